#!/usr/bin/env bash
# Run `ansible-test sanity` on the ipsecconf.ipsecconf collection, the way ansible-test
# wants it: a copy laid out as ansible_collections/ipsecconf/ipsecconf/, in git.
#
# The copy is what `ansible-galaxy collection build` packs (galaxy.yml's build_ignore
# leaves out the Python package, its tests and scripts), installed into a temporary
# directory, so the sanity run sees exactly the published collection.  ansible-test
# lists the files to check with git, hence the `git init` in the copy.
#
# --venv: ansible-test builds its own virtualenvs (pylint, pycodestyle, yamllint,
# voluptuous, ...) from PyPI on the first run and reuses them (under ~/.ansible/test).
#
# Environment: ANSIBLE_BIN_DIR (where ansible-galaxy/ansible-test live; default: beside
# this Python, else PATH), SANITY_ARGS (extra ansible-test arguments, e.g. "--test pep8").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

bin_dir=${ANSIBLE_BIN_DIR:-}
if [ -z "$bin_dir" ]; then
    if [ -x "$ROOT/.venv/bin/ansible-test" ]; then
        bin_dir="$ROOT/.venv/bin"
    elif command -v ansible-test >/dev/null 2>&1; then
        bin_dir=$(dirname "$(command -v ansible-test)")
    else
        echo "ansible-sanity: ansible-test not found; install ansible-core (pip install -e '.[test]')" >&2
        exit 1
    fi
fi

# ansible-test fetches a get-pip.py from ansible's CI file server for its venvs; offer
# a stand-in that bootstraps pip with ensurepip and PyPI (see the script's docstring).
reqs=$("$bin_dir/python" -c 'import ansible_test._internal.python_requirements as m; print(m.__file__)')
pip_version=$(grep -o "pip='[0-9.]*'" "$reqs" | head -1 | tr -dc '0-9.')
if [ -n "$pip_version" ]; then
    cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    if [ ! -s "$cache" ]; then
        mkdir -p "$(dirname "$cache")"
        cp "$ROOT/scripts/ansible_test_pip_bootstrap.py" "$cache"
    fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ipsecconf-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$bin_dir/ansible-galaxy" collection build "$ROOT" --output-path "$work/dist" >/dev/null
"$bin_dir/ansible-galaxy" collection install --no-deps -p "$work" "$work"/dist/*.tar.gz >/dev/null
cd "$work/ansible_collections/ipsecconf/ipsecconf"
# The sanity ignore files are test metadata, not part of the built artifact.
mkdir -p tests/sanity
cp "$ROOT"/tests/sanity/ignore-*.txt tests/sanity/
# ansible-test's own virtualenv lands in tests/output: never check it.
printf '/tests/output/\n' > .gitignore
git init -q .
git add -A
# shellcheck disable=SC2086
"$bin_dir/ansible-test" sanity --python 3.11 ${SANITY_MODE:---venv} --color no ${SANITY_ARGS:-}
