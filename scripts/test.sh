#!/usr/bin/env bash
# Set everything up, then run every check: ruff (lint and format), mypy, the import
# layering contracts and the whole pytest suite, slow network tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check ipsecconf tests scripts plugins
.venv/bin/ruff format --check ipsecconf tests scripts plugins
echo "== mypy"
.venv/bin/mypy
echo "== import contracts"
.venv/bin/lint-imports
# Two passes: everything else on two workers, then the network-namespace tests one at a
# time, since two engines, iperf3 and strongSwan sharing two cores with a second worker
# make packet-loss bounds a matter of luck.
run_pytest() {
    set +e
    .venv/bin/python -m pytest "$@"
    local status=$?
    set -e
    if [ "$status" = 5 ]; then
        # pytest's "no tests collected": never a success for CI.
        echo "test.sh: pytest collected no tests for: $*" >&2
        return 1
    fi
    return "$status"
}
status=0
echo "== pytest (parallel)"
run_pytest -n "${PYTEST_WORKERS:-2}" --durations=15 -m "not netns" "$@" || status=$?
echo "== pytest (network namespaces, serial)"
run_pytest --durations=15 -m netns "$@" || status=$?
exit "$status"
