#!/bin/sh
# The vault password of this scenario's inventory (ANSIBLE_VAULT_PASSWORD_FILE runs this): made
# on first use, mode 0600, git-ignored, kept beside the vault that prepare.yml writes into
# inventory/group_vars/all/vault.yml.
set -eu
file="${MOLECULE_SCENARIO_DIRECTORY:?run this scenario through molecule}/.vault-pass"
if [ ! -s "$file" ]; then
  (umask 077 && head -c 32 /dev/urandom | base64 >"$file")
fi
cat "$file"
