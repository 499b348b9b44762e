"""The rotation report of the secrets and configs roles (one line per object, from module results),
and the version names a vault would give."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.shopstream.swarm.plugins.filter.rotation import (
    rotation_entries,
    rotation_report,
    versioned_names,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerClient, filters_param
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import (
    LOGICAL_LABEL,
    SECRET,
    rewire_and_prune,
    versioned_name,
)

JWT_OLD, JWT_NEW = "shopstream_jwt_signing_key_5d0c8e1f2a3b", "shopstream_jwt_signing_key_77e0a9b1c2d3"
DB = "shopstream_mariadb_password_0a1b2c3d4e5f"
REDIS_OLD, REDIS_NEW = "shopstream_redis_password_9f8e7d6c5b4a", "shopstream_redis_password_1234567890ab"


def loop_result(key, name, created, previous="", **item):
    """One item of a swarm_secret / swarm_config loop registered with prune: false."""
    return {
        "changed": created,
        "item": dict({"key": key}, **item),
        "ansible_loop_var": "item",
        "name": name,
        "id": f"id-{name}",
        "created": created,
        "previous": previous,
        "rewired": [],
        "pruned": [],
        "in_use": [],
        "events": [],
    }


def rewire_result(rewired=(), pruned=(), in_use=()):
    """A swarm_rewire result, as rewire_and_prune builds it."""
    return {
        "changed": bool(rewired or pruned),
        "rewired": list(rewired),
        "pruned": list(pruned),
        "in_use": list(in_use),
        "events": [],
    }


def secret_results():
    return [
        loop_result("jwt_signing_key", JWT_NEW, True, JWT_OLD, value="vault_shopstream_jwt_signing_key"),
        loop_result("mariadb_password", DB, False, value="vault_shopstream_mariadb_password"),
        loop_result("redis_password", REDIS_NEW, True, value="vault_shopstream_redis_password"),
    ]


def secret_rewire():
    return rewire_result(
        rewired=[
            {"service": "shop_auth", "moved": {"secret": [[JWT_OLD, JWT_NEW]]}},
            {"service": "shop_gateway", "moved": {"secret": [[JWT_OLD, JWT_NEW], [REDIS_OLD, REDIS_NEW]]}},
        ],
        pruned=[{"kind": "secret", "object": "shopstream_jwt_signing_key", "name": JWT_OLD}],
        in_use=[
            {
                "kind": "secret",
                "object": "shopstream_redis_password",
                "name": REDIS_OLD,
                "services": ["shop_worker"],
            }
        ],
    )


def test_secret_lines_name_new_and_old_versions_rewired_services_and_pruned_versions():
    assert rotation_report(secret_results(), secret_rewire(), prefix="shopstream_", kind="secret") == [
        f"jwt_signing_key: new {JWT_NEW}, was {JWT_OLD}; rewired: shop_auth, shop_gateway; pruned: {JWT_OLD}",
        f"mariadb_password: current {DB}; rewired: none; pruned: none",
        f"redis_password: new {REDIS_NEW}, was none; rewired: shop_gateway; pruned: none; kept in use: {REDIS_OLD}",
    ]


def test_a_previous_value_that_follows_the_signers_reports_the_version_the_rewire_chose():
    prev = "shopstream_jwt_signing_key_previous_aaaaaaaaaaaa"
    chosen = "shopstream_jwt_signing_key_previous_bbbbbbbbbbbb"
    results = [{"object": "shopstream_jwt_signing_key_previous", "name": prev, "created": True, "previous": chosen}]
    rewire = rewire_result(
        rewired=[{"service": "shop_gateway", "moved": {"secret": [["shopstream_jwt_signing_key_previous_c", chosen]]}}]
    )
    rewire["targets"] = {"secret": {"shopstream_jwt_signing_key_previous": chosen}}
    assert rotation_report(results, rewire, prefix="shopstream_") == [
        f"jwt_signing_key_previous: current {chosen} (the value its signers ran, not the vault's); "
        "rewired: shop_gateway; pruned: none"
    ]


NGINX_OLD, NGINX_NEW = "shopstream_nginx_aaaaaaaaaaaa", "shopstream_nginx_bbbbbbbbbbbb"
PROM = "shopstream_prometheus_cccccccccccc"
AM, AM_OLD = "shopstream_alertmanager_dddddddddddd", "shopstream_alertmanager_eeeeeeeeeeee"


def config_results():
    return [
        loop_result("nginx", NGINX_NEW, True, NGINX_OLD, target="/etc/nginx/conf.d/default.conf"),
        loop_result("prometheus", PROM, True, target="/etc/prometheus/prometheus.yml"),
        loop_result("alertmanager", AM, False, target="/etc/alertmanager/alertmanager.yml"),
    ]


def config_rewire():
    return rewire_result(
        rewired=[
            {"service": "shop_frontend", "moved": {"config": [[NGINX_OLD, NGINX_NEW]]}},
            {"service": "shop_edge", "moved": {"config": [[NGINX_OLD, NGINX_NEW]]}},
        ],
        pruned=[{"kind": "config", "object": "shopstream_nginx", "name": NGINX_OLD}],
        in_use=[{"kind": "config", "object": "shopstream_alertmanager", "name": AM_OLD, "services": ["shop_am"]}],
    )


def test_config_lines_say_new_or_unchanged_and_always_name_the_old_versions_in_use():
    assert rotation_report(config_results(), config_rewire(), prefix="shopstream_", kind="config") == [
        f"nginx: {NGINX_NEW} (new version, was {NGINX_OLD}); services rewired: shop_frontend, shop_edge; "
        f"versions pruned: {NGINX_OLD}; old versions still in use: none",
        f"prometheus: {PROM} (new version); services rewired: none; versions pruned: none; "
        "old versions still in use: none",
        f"alertmanager: {AM} (unchanged); services rewired: none; versions pruned: none; "
        f"old versions still in use: {AM_OLD}",
    ]


def test_the_same_entries_behind_both_wordings():
    entries = rotation_entries(secret_results(), secret_rewire(), prefix="shopstream_", kind="secret")
    assert entries[0] == {
        "key": "jwt_signing_key",
        "name": JWT_NEW,
        "followed": False,
        "created": True,
        "previous": JWT_OLD,
        "rewired": ["shop_auth", "shop_gateway"],
        "pruned": [JWT_OLD],
        "in_use": [],
    }


@pytest.mark.parametrize(
    "moved, rewired",
    [
        ({"secret": [[JWT_OLD, JWT_NEW]]}, ["shop_auth"]),
        # A move onto another object's version, or of the other kind, is not this object's.
        ({"secret": [[REDIS_OLD, REDIS_NEW]]}, []),
        ({"config": [[JWT_OLD, JWT_NEW]]}, []),
        # Moving away from this version does not count either: only the version moved onto.
        ({"secret": [[JWT_NEW, "shopstream_jwt_signing_key_ffffffffffff"]]}, []),
        ({}, []),
    ],
)
def test_a_service_counts_for_the_object_whose_version_it_moved_onto(moved, rewired):
    rewire = rewire_result(rewired=[{"service": "shop_auth", "moved": moved}])
    results = [loop_result("jwt_signing_key", JWT_NEW, True, JWT_OLD)]
    assert rotation_entries(results, rewire, prefix="shopstream_", kind="secret")[0]["rewired"] == rewired


def test_pruned_and_in_use_versions_are_matched_by_the_logical_name_with_its_prefix():
    rewire = rewire_result(pruned=[{"kind": "secret", "object": "jwt_signing_key", "name": JWT_OLD}])
    results = [loop_result("jwt_signing_key", JWT_NEW, True, JWT_OLD)]
    assert rotation_entries(results, rewire, prefix="shopstream_")[0]["pruned"] == []
    assert rotation_entries(results, rewire, prefix="")[0]["pruned"] == [JWT_OLD]


def test_no_objects_no_lines():
    assert rotation_report([], rewire_result(), prefix="shopstream_", kind="config") == []


def test_a_result_without_a_version_name_is_refused_by_name():
    skipped = {"item": {"key": "jwt_signing_key"}, "skipped": True, "changed": False}
    with pytest.raises(AnsibleFilterError, match="secret result for jwt_signing_key has no version name"):
        rotation_report([skipped], rewire_result(), prefix="shopstream_")


def test_an_unknown_kind_is_refused():
    with pytest.raises(AnsibleFilterError, match="kind must be one of secret, config, not 'volume'"):
        rotation_report(secret_results(), secret_rewire(), kind="volume")


def test_the_report_reads_what_rewire_and_prune_returns(engine):
    """Against the module_utils' own output (check mode on a fake engine), not a hand-made copy of it."""
    client = DockerClient("unix://" + engine.server_address, timeout=3)

    def version(obj_id, name, created):
        labels = {LOGICAL_LABEL: "shopstream_jwt_signing_key"}
        return {"ID": obj_id, "CreatedAt": created, "Spec": {"Name": name, "Labels": labels}}

    old = version("v1", JWT_OLD, "2026-01-01T00:00:00Z")
    older = version("v0", "shopstream_jwt_signing_key_000000000000", "2025-01-01T00:00:00Z")
    label = filters_param(label=[f"{LOGICAL_LABEL}=shopstream_jwt_signing_key"])
    engine.routes[("GET", f"/secrets?{label}")] = (200, [old, older])
    secret_ref = {"SecretID": "v1", "SecretName": JWT_OLD, "File": {"Name": "jwt_signing_key"}}
    spec = {"Name": "shop_auth", "TaskTemplate": {"ContainerSpec": {"Image": "auth", "Secrets": [secret_ref]}}}
    engine.routes[("GET", "/services")] = (200, [{"ID": "id-auth", "Version": {"Index": 3}, "Spec": spec}])

    rewire = rewire_and_prune(client, {SECRET: {"shopstream_jwt_signing_key": JWT_NEW}}, keep=1, check_mode=True)
    results = [loop_result("jwt_signing_key", JWT_NEW, True, JWT_OLD)]
    assert rotation_report(results, rewire, prefix="shopstream_", kind="secret") == [
        f"jwt_signing_key: new {JWT_NEW}, was {JWT_OLD}; rewired: shop_auth; "
        f"pruned: {JWT_OLD}, shopstream_jwt_signing_key_000000000000"
    ]


def test_versioned_names_are_the_modules_names_and_show_no_value():
    names = versioned_names(["s3cret", 42], ["shopstream_redis_password", "shopstream_n"], "key")
    assert names == [
        versioned_name("shopstream_redis_password", b"s3cret", "key"),
        versioned_name("shopstream_n", b"42", "key"),
    ]
    assert all("s3cret" not in n for n in names)
    # Another vault's hash key names the same value differently: that is how a foreign vault shows.
    assert versioned_names(["s3cret"], ["shopstream_redis_password"], "other")[0] != names[0]
    with pytest.raises(AnsibleFilterError, match="2 values for 1 names"):
        versioned_names(["a", "b"], ["shopstream_a"], "key")
