#!/bin/sh
# CI job set-up for the plan, apply and drift jobs: Ansible and the ipsecconf
# collection, the SSH key the nodes accept, and the Vault password file.
# Reads SSH_PRIVATE_KEY, SSH_KNOWN_HOSTS and ANSIBLE_VAULT_PASSWORD from the job's
# secrets, and prints the line to export ANSIBLE_VAULT_PASSWORD_FILE.
set -eu
: "${SSH_PRIVATE_KEY:?set SSH_PRIVATE_KEY (CI secret)}"
: "${SSH_KNOWN_HOSTS:?set SSH_KNOWN_HOSTS (CI secret)}"
: "${ANSIBLE_VAULT_PASSWORD:?set ANSIBLE_VAULT_PASSWORD (CI secret)}"
here=$(dirname "$0")
python3 -m pip install --quiet "${ANSIBLE_SPEC:-ansible-core>=2.16}" >&2
ansible-galaxy collection install -r "$here/requirements.yml" >&2
umask 077
mkdir -p "$HOME/.ssh"
printf '%s\n' "$SSH_PRIVATE_KEY" > "$HOME/.ssh/id_ed25519"
printf '%s\n' "$SSH_KNOWN_HOSTS" > "$HOME/.ssh/known_hosts"
vault_file=$(mktemp)
printf '%s\n' "$ANSIBLE_VAULT_PASSWORD" > "$vault_file"
echo "ANSIBLE_VAULT_PASSWORD_FILE=$vault_file"
