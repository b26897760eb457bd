#!/usr/bin/env bash
# Quick start: set up, then validate, plan and apply the quick-start example to a local
# SQLite state (./.quickstart/state.db), and show the result.  Run it again: the second
# plan shows no changes.
set -euo pipefail
cd "$(dirname "$0")/.."
IPSECCONF_SKIP_SYSTEM_DEPS=1 scripts/setup.sh

export IPSECCONF_STATE=${IPSECCONF_STATE:-$PWD/.quickstart/state.db}
mkdir -p "$(dirname "$IPSECCONF_STATE")"
ipsecconf=.venv/bin/ipsecconf
example=examples/quickstart

echo "\$ ipsecconf validate $example"
$ipsecconf validate "$example"
echo
echo "\$ ipsecconf plan $example"
$ipsecconf plan "$example"
echo
echo "\$ ipsecconf apply --auto-approve $example"
$ipsecconf apply --auto-approve "$example"
echo
echo "\$ ipsecconf show policies"
$ipsecconf show policies
