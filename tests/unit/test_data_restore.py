"""data_restore and the backup parts: what a restore loads, and how (tests/integration/test_backup.py
runs both modules against the real services)."""

import json
import subprocess

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._data_parts import (
    REDIS_LOAD_SCRIPT,
    rabbitmq_definitions_to_import,
    rdb_length,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DockerClient,
    filters_param,
    service_container,
    service_containers,
)
from ansible_collections.shopstream.swarm.plugins.modules.data_restore import redis_load_command

REDIS_CLI_STDERR = """sending REPLCONF capa eof
sending REPLCONF rdb-only 1
SYNC sent to master, writing bytes of bulk transfer until EOF marker to '-'
Transfer finished with success after 182 bytes
"""


def test_the_rdb_length_is_what_redis_cli_reported_so_the_end_mark_is_cut():
    assert rdb_length(REDIS_CLI_STDERR) == 182
    assert rdb_length("Transfer finished with success after 0 bytes") == 0
    assert rdb_length("Error: Server closed the connection") is None


def test_rabbitmq_definitions_are_imported_without_the_accounts_the_vault_owns():
    definitions = {
        "rabbit_version": "3.13.7",
        "users": [{"name": "shopstream", "password_hash": "old-hash"}],
        "permissions": [{"user": "shopstream", "vhost": "/"}],
        "topic_permissions": [],
        "vhosts": [{"name": "/"}],
        "queues": [{"name": "orders", "vhost": "/", "durable": True}],
        "policies": [{"name": "ttl", "pattern": "^orders$"}],
    }
    imported = json.loads(rabbitmq_definitions_to_import(json.dumps(definitions).encode()))
    assert sorted(imported) == ["policies", "queues", "rabbit_version", "vhosts"]
    assert imported["queues"] == definitions["queues"]


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"users": []}'])
def test_anything_but_definitions_is_refused(raw):
    with pytest.raises(ValueError, match="not the broker's definitions|Expecting value"):
        rabbitmq_definitions_to_import(raw)


def test_the_redis_snapshot_is_written_by_a_container_with_no_network_no_capability_not_root():
    argv = redis_load_command("shopstream/redis:1", "shopstream-data_redis-data")
    assert argv[:4] == ["docker", "run", "--rm", "-i"]
    for flag, value in (
        ("--network", "none"),
        ("--user", "redis"),
        ("--cap-drop", "ALL"),
        ("-v", "shopstream-data_redis-data:/data"),
    ):
        assert argv[argv.index(flag) + 1] == value
    assert "--read-only" in argv and argv[-3:] == ["shopstream/redis:1", "-c", REDIS_LOAD_SCRIPT]


def load(tmp_path, snapshot, check_rc):
    """REDIS_LOAD_SCRIPT on a copy of a volume, with a stand-in redis-check-rdb exiting check_rc."""
    data, bin_dir = tmp_path / "data", tmp_path / "bin"
    (data / "appendonlydir").mkdir(parents=True, exist_ok=True)
    (data / "appendonlydir" / "appendonly.aof.1.incr.aof").write_text("SET old 1")
    (data / "dump.rdb").write_bytes(b"REDIS-old")
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "redis-check-rdb").write_text(f"#!/bin/sh\nexit {check_rc}\n")
    (bin_dir / "redis-check-rdb").chmod(0o755)
    script = REDIS_LOAD_SCRIPT.replace("cd /data", f"cd {data}")
    done = subprocess.run(["sh", "-c", script], input=snapshot, capture_output=True, check=False,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"})  # fmt: skip
    return done, data


def test_a_checked_snapshot_becomes_the_base_of_a_new_append_only_file(tmp_path):
    done, data = load(tmp_path, b"REDIS0011-new", 0)
    assert done.returncode == 0, done.stderr
    aof = data / "appendonlydir"
    assert sorted(p.name for p in data.iterdir()) == ["appendonlydir"]
    assert sorted(p.name for p in aof.iterdir()) == ["appendonly.aof.1.base.rdb", "appendonly.aof.manifest"]
    assert (aof / "appendonly.aof.1.base.rdb").read_bytes() == b"REDIS0011-new"
    assert (aof / "appendonly.aof.manifest").read_text() == "file appendonly.aof.1.base.rdb seq 1 type b\n"


def test_a_snapshot_that_does_not_check_leaves_the_volume_as_it_was(tmp_path):
    done, data = load(tmp_path, b"garbage", 1)
    assert done.returncode == 4 and b"not a valid RDB snapshot" in done.stderr
    assert sorted(p.name for p in data.iterdir()) == ["appendonlydir", "dump.rdb"]
    assert [p.name for p in (data / "appendonlydir").iterdir()] == ["appendonly.aof.1.incr.aof"]


def test_a_service_container_is_a_running_one_of_the_service_that_is_healthy_or_has_no_check(engine):
    service = "shopstream-data_redis"
    query = "/containers/json?" + filters_param(label=[f"com.docker.swarm.service.name={service}"], status=["running"])
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    engine.routes[("GET", query)] = (200, [{"Id": "a", "Status": "Up 2 seconds (health: starting)"}])
    assert [c["Id"] for c in service_containers(client, service)] == ["a"]
    found, error = service_container(client, service, timeout=0)
    assert found is None and "No healthy container of shopstream-data_redis runs on this node after 0 s" in error
    engine.routes[("GET", query)] = (
        200,
        [{"Id": "a", "Status": "Up 9 s (unhealthy)"}, {"Id": "b", "Status": "Up 9 s"}],
    )
    assert service_container(client, service, timeout=0) == ("b", None)
    engine.routes[("GET", query)] = (200, [])
    assert service_containers(client, service) == []


NO_NODE = "no suitable node (scheduling constraints not satisfied on 3 nodes)"


def test_no_healthy_container_says_what_the_node_shows_of_the_service(engine):
    service = "shopstream-data_mariadb"
    label = [f"com.docker.swarm.service.name={service}"]
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    engine.routes[("GET", "/containers/json?" + filters_param(label=label, status=["running"]))] = (200, [])
    engine.routes[("GET", "/containers/json?all=1&" + filters_param(label=label))] = (
        200,
        [{"Names": ["/shopstream-data_mariadb.1.x"], "State": "exited", "Status": "Exited (1) 5 seconds ago"}],
    )
    engine.routes[("GET", "/info")] = (200, {"Swarm": {"ControlAvailable": True}})
    engine.routes[("GET", "/tasks?" + filters_param(service=[service]))] = (
        200,
        [
            {"UpdatedAt": "2026-12-06T10:00:00Z", "NodeID": "n1", "DesiredState": "shutdown",
             "Status": {"State": "failed", "Err": "task: non-zero exit (1)"}},
            {"UpdatedAt": "2026-12-06T10:01:00Z", "NodeID": "", "DesiredState": "running",
             "Status": {"State": "pending", "Err": NO_NODE}},
        ],
    )  # fmt: skip
    engine.routes[("GET", "/nodes")] = (200, [{"ID": "n1", "Description": {"Hostname": "manager2"}}])
    found, error = service_container(client, service, timeout=0)
    assert found is None
    assert "Its containers here: shopstream-data_mariadb.1.x Exited (1) 5 seconds ago." in error
    assert (
        f"Its newest tasks: pending ({NO_NODE}) on no node, wanted running; "
        "failed (task: non-zero exit (1)) on manager2, wanted shutdown." in error
    ), error
    engine.routes[("GET", "/info")] = (200, {"Swarm": {"ControlAvailable": False}})
    found, error = service_container(client, service, timeout=0)
    assert "Its containers here:" in error and "Its newest tasks" not in error
