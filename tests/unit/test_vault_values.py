"""vault_values: which keys get values, value shape, and the vault file on disk."""

import os
import stat

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret, is_encrypted

from ansible_collections.shopstream.swarm.plugins.action.vault_values import (
    ALPHABETS,
    ActionModule,
    apply,
    generate,
    plan,
)

SPECS = {"a": {"length": 8}, "b": {"length": 16}, "cookie": {"length": 32, "alphabet": "upper"}}


@pytest.mark.parametrize(
    ("current", "rotate", "generated", "rotated"),
    [
        ({}, [], ["a", "b", "cookie"], []),
        ({"a": "x", "b": "y", "cookie": "z"}, [], [], []),
        ({"a": "x", "b": "", "cookie": "z"}, [], ["b"], []),
        ({"a": "x", "b": "y", "cookie": "z"}, ["b"], [], ["b"]),
        ({"a": "x"}, ["a"], ["b", "cookie"], ["a"]),
        ({"a": "x", "b": "y", "cookie": "z"}, ["all"], [], ["a", "b", "cookie"]),
    ],
)
def test_plan(current, rotate, generated, rotated):
    assert plan(current, SPECS, rotate) == (generated, rotated)


@pytest.mark.parametrize(
    ("current", "generated", "rotated", "values", "carried"),
    [
        # First run: the previous value is the current one.
        ({}, ["key"], [], {"key": "new", "key_previous": "new"}, ["key_previous"]),
        # A rotation keeps the replaced value.
        ({"key": "v1", "key_previous": "v0"}, [], ["key"], {"key": "new", "key_previous": "v1"}, ["key_previous"]),
        # Nothing to do: unchanged, nothing rewritten.
        ({"key": "v1", "key_previous": "v0"}, [], [], {"key": "v1", "key_previous": "v0"}, []),
        # A vault made before keep_previous existed gets the current value as the previous one.
        ({"key": "v1"}, [], [], {"key": "v1", "key_previous": "v1"}, ["key_previous"]),
    ],
)
def test_keep_previous(current, generated, rotated, values, carried):
    specs = {"key": {"length": 8, "keep_previous": True}, "plain": {"length": 8}}
    current = dict(current, plain="p")
    updated, written = apply(current, specs, generated, rotated, make=lambda spec: "new")
    assert updated == dict(values, plain="p")
    assert written == carried


def test_generated_values_fit_their_alphabet_and_length():
    value = generate({"length": 40})
    assert len(value) == 40 and set(value) <= set(ALPHABETS["alnum"])
    assert set(generate({"length": 32, "alphabet": "upper"})) <= set(ALPHABETS["upper"])
    assert generate({"length": 40}) != value


def test_write_then_read_round_trip_encrypted_and_private(tmp_path):
    vault = VaultLib([("default", VaultSecret(b"pw"))])
    path = tmp_path / "group_vars" / "all" / "vault.yml"
    ActionModule._write(str(path), vault, {"vault_x": "1", "other": "kept"})
    raw = path.read_bytes()
    assert is_encrypted(raw) and b"kept" not in raw
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert yaml.safe_load(vault.decrypt(raw)) == {"vault_x": "1", "other": "kept"}
    assert ActionModule._read(str(path), vault, "pwfile") == {"vault_x": "1", "other": "kept"}


def test_a_wrong_password_is_named(tmp_path):
    path = tmp_path / "vault.yml"
    ActionModule._write(str(path), VaultLib([("default", VaultSecret(b"right"))]), {"a": "b"})
    with pytest.raises(Exception, match="wrong password file"):
        ActionModule._read(str(path), VaultLib([("default", VaultSecret(b"wrong"))]), "pwfile")


def test_a_plain_file_is_refused(tmp_path):
    path = tmp_path / "vault.yml"
    path.write_text("a: b\n")
    with pytest.raises(Exception, match="is not encrypted. Encrypt it first"):
        ActionModule._read(str(path), VaultLib([("default", VaultSecret(b"pw"))]), "pwfile")
