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
    plan_tls,
    recorded,
    retired,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._local_ca import issue_ca, issue_server, reissue_reason

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


def test_retiring_makes_the_previous_value_the_current_one_once():
    """After every client moved (Redis's, RabbitMQ's), the servers need the replaced value no more."""
    updated = {"key": "v2", "key_previous": "v1", "other": "o", "other_previous": "o0"}
    assert retired(updated, ["key"]) == ["key_previous"]
    assert updated == {"key": "v2", "key_previous": "v2", "other": "o", "other_previous": "o0"}
    assert retired(updated, ["key"]) == [], "a second time changes nothing"
    # In the same run as a rotation of the key, the rotation's previous value stays.
    rotated = {"key": "v3", "key_previous": "v2"}
    assert retired(rotated, ["key"], exclude=["key_previous"]) == [] and rotated["key_previous"] == "v2"


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


# --- the local CA (tls) ------------------------------------------------------------------------------
TLS = {
    "certificate": "shopstream_tls_certificate",
    "key": "vault_shopstream_tls_key",
    "ca_certificate": "shopstream_tls_ca_certificate",
    "ca_key": "vault_shopstream_tls_ca_key",
    "names": ["localhost", "127.0.0.1", "shop.test"],
}


def test_plan_tls_makes_a_ca_and_a_certificate_once_then_keeps_them():
    made, reason = plan_tls({}, TLS)
    assert reason == "a new local CA"
    assert set(made) == {TLS[k] for k in ("certificate", "key", "ca_certificate", "ca_key")}
    assert reissue_reason(made[TLS["certificate"]], made[TLS["ca_certificate"]], TLS["names"]) is None
    assert plan_tls(made, TLS) == ({}, None)


def test_plan_tls_issues_again_for_a_new_name_with_the_same_ca():
    made, _reason = plan_tls({}, TLS)
    again, reason = plan_tls(made, dict(TLS, names=[*TLS["names"], "10.0.0.5"]))
    assert reason == "it does not name 10.0.0.5"
    assert set(again) == {TLS["certificate"], TLS["key"]}, "the CA is kept: clients keep trusting it"
    assert reissue_reason(again[TLS["certificate"]], made[TLS["ca_certificate"]], ["10.0.0.5"]) is None


def test_plan_tls_renews_a_certificate_near_its_end():
    made, _reason = plan_tls({}, dict(TLS, days=20))
    again, reason = plan_tls(made, TLS)
    assert reason.startswith("it expires on ") and "fewer than 30 days" in reason
    assert set(again) == {TLS["certificate"], TLS["key"]}


def test_plan_tls_never_touches_the_sites_own_certificate():
    site = {TLS["certificate"]: "-----BEGIN CERTIFICATE-----\nsite\n", TLS["key"]: "site key"}
    assert plan_tls(site, TLS) == ({}, None)


def test_a_certificate_of_another_ca_is_issued_again():
    made, _reason = plan_tls({}, TLS)
    other_cert, other_key = issue_ca()
    foreign = issue_server(other_cert, other_key, TLS["names"])[0]
    assert reissue_reason(foreign, made[TLS["ca_certificate"]], TLS["names"]) == "it is not signed by the local CA"


def test_recorded_writes_a_value_made_elsewhere_only_when_the_vault_holds_another():
    updated = {"swarm_unlock_key": "SWMKEY-1-old", "other": "o"}
    assert recorded(updated, {"swarm_unlock_key": "SWMKEY-1-new"}) == ["swarm_unlock_key"]
    assert updated == {"swarm_unlock_key": "SWMKEY-1-new", "other": "o"}
    assert recorded(updated, {"swarm_unlock_key": "SWMKEY-1-new"}) == [], "the same value again writes nothing"
    empty = {}
    assert recorded(empty, {"swarm_unlock_key": "SWMKEY-1-new"}) == ["swarm_unlock_key"] and empty
