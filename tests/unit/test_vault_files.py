"""The vars plugin vault_files: which files it reads, and how it names one it cannot decrypt."""

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret

from ansible_collections.shopstream.swarm.plugins.vars.vault_files import problem, vault_files


def vault_with(password):
    return VaultLib([("default", VaultSecret(password.encode()))]) if password else VaultLib([])


@pytest.fixture
def inventory(tmp_path):
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "host_vars" / "m1").mkdir(parents=True)
    encrypted = vault_with("right").encrypt("vault_x: 1\n")
    (tmp_path / "group_vars" / "all" / "vault.yml").write_bytes(encrypted)
    (tmp_path / "host_vars" / "m1" / "vault_extra.yaml").write_text("plain: value\n")
    (tmp_path / "group_vars" / "all" / "main.yml").write_text("a: 1\n")
    return tmp_path


def test_only_the_vault_files_are_read(inventory):
    assert vault_files(str(inventory)) == [
        str(inventory / "group_vars" / "all" / "vault.yml"),
        str(inventory / "host_vars" / "m1" / "vault_extra.yaml"),
    ]


def test_a_file_the_passwords_cannot_decrypt_is_named_with_the_fix(inventory):
    path = str(inventory / "group_vars" / "all" / "vault.yml")
    assert problem(vault_with("right"), path) is None
    assert problem(vault_with("wrong"), path) == (
        f"{path}: none of the vault passwords given decrypts it (a wrong password file, or another inventory's). "
        f"Fix: --vault-password-file {inventory}/.vault-pass (this inventory's password file, where vault_init put it)."
    )
    assert problem(vault_with(None), path).startswith(f"{path} is encrypted and no vault password was given.")
    # A plaintext vault file is preflight's to refuse.
    assert problem(vault_with("wrong"), str(inventory / "host_vars" / "m1" / "vault_extra.yaml")) is None
