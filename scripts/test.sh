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
echo "== pytest"
set +e
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --durations=15 "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    # pytest's "no tests collected": never a success for CI.
    echo "test.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
