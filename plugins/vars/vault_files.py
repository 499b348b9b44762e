# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
name: vault_files
short_description: Name the vault file that the vault passwords given cannot decrypt
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Ansible reads C(group_vars) and C(host_vars) before any task runs, and a vault file that the
    passwords given cannot decrypt stops it with "Decryption failed", naming no file.
  - Listed before C(host_group_vars) in C(vars_plugins_enabled) (this collection's C(ansible.cfg)
    does), this plugin tries each encrypted C(vault*) file under an inventory's or playbook's
    C(group_vars) and C(host_vars) first, and stops the run naming the file and the fix.
  - It returns no variables and never shows a value. A plaintext vault file is left to the
    preflight role, which refuses it.
options:
  stage:
    description: When to run (Ansible's C(vars_plugin_staging)).
    ini:
      - key: stage
        section: shopstream.swarm.vault_files
    env:
      - name: ANSIBLE_VARS_PLUGIN_STAGE
"""

import os

from ansible.errors import AnsibleError
from ansible.parsing.vault import AnsibleVaultError, is_encrypted
from ansible.plugins.vars import BaseVarsPlugin

YAML = (".yml", ".yaml")


def vault_files(base):
    """The ``vault*`` files under ``base``/group_vars and ``base``/host_vars, sorted."""
    found = []
    for sub in ("group_vars", "host_vars"):
        for root, _dirs, files in os.walk(os.path.join(base, sub)):
            found.extend(
                os.path.join(root, f) for f in files if f == "vault" or f.startswith("vault") and f.endswith(YAML)
            )
    return sorted(found)


def problem(vault, path):
    """Why ``vault`` (a VaultLib) cannot decrypt the file at ``path``, or None."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not is_encrypted(data):
        return None
    if not vault.secrets:
        return f"{path} is encrypted and no vault password was given. Fix: add --vault-password-file " + hint(path)
    try:
        vault.decrypt(data)
    except AnsibleVaultError:
        return (
            f"{path}: none of the vault passwords given decrypts it (a wrong password file, or another "
            f"inventory's). Fix: --vault-password-file {hint(path)}"
        )
    return None


def hint(path):
    inventory = os.path.dirname(os.path.dirname(os.path.dirname(path)))
    return f"{os.path.join(inventory, '.vault-pass')} (this inventory's password file, where vault_init put it)."


# Each directory is read once per run, as host_group_vars reads it: a vault that a playbook
# creates during the run (vault_init) is not read back here.
CHECKED = set()


class VarsModule(BaseVarsPlugin):
    def get_vars(self, loader, path, entities, cache=True):
        super().get_vars(loader, path, entities)
        base = os.path.realpath(path)
        if base in CHECKED:
            return {}
        CHECKED.add(base)
        for file in vault_files(base):
            reason = problem(loader._vault, file)  # the passwords this run was given
            if reason:
                raise AnsibleError(reason)
        return {}
