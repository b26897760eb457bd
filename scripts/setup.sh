#!/usr/bin/env bash
# Set up everything ipsecconf and its tests need on a fresh Debian 12 / Python 3.11
# machine: a virtualenv in .venv with the package and its test tools, and (as root) the
# Debian packages the network tests use.  Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.ipsecconf-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    echo "$want" > "$stamp"
fi

if [ "${IPSECCONF_SKIP_SYSTEM_DEPS:-0}" != 1 ] && [ -x scripts/install-test-deps.sh ]; then
    if [ "$(id -u)" = 0 ]; then
        scripts/install-test-deps.sh
    else
        echo "setup: not root, skipping Debian packages for the network tests" >&2
    fi
fi
