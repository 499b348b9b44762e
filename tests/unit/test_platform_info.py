"""swarm_platform_info's reading of what runs: the data the verify role checks."""

import time

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._platform_info import (
    container_view,
    found_in,
    platform,
    process_status,
)

NETWORKS = [
    {"Id": "n-back", "Name": "shopstream-app_backend"},
    {"Id": "n-data", "Name": "shopstream-data_data"},
    {"Id": "n-pub", "Name": "traefik-public"},
]
SECRET = "s3cret-value-of-redis"  # noqa: S105 - a value to find, in no vault


def stamp(age):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - age)) + ".5Z"


def service(name, stack="shopstream-app", replicas=2, update=None, env=(), ports=(), networks=("n-back",)):
    template = {
        "ContainerSpec": {
            "Image": "shopstream/app:1",
            "Env": list(env),
            "Secrets": [{"SecretName": "shopstream_redis_password_ab12", "File": {"Name": "redis_password"}}],
        },
        "Networks": [{"Target": n} for n in networks],
    }
    found = {
        "ID": f"id-{name}",
        "Spec": {
            "Name": f"{stack}_{name}",
            "Labels": {"com.docker.stack.namespace": stack},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": template,
            "UpdateConfig": {"Monitor": 60_000_000_000},
            "EndpointSpec": {"Ports": [{"PublishedPort": p} for p in ports]},
        },
        "Endpoint": {"Ports": [{"PublishedPort": p} for p in ports]},
    }
    if update:
        found["UpdateStatus"] = {"State": update, "StartedAt": "2026-12-06T07:00:00Z", "Message": "m"}
    return found


def task(svc, slot, state="running", desired="running", node="node-a", age=1, container="c" * 64):
    return {
        "ID": f"task-{svc['Spec']['Name']}-{slot}-{state}",
        "ServiceID": svc["ID"],
        "Slot": slot,
        "NodeID": node,
        "DesiredState": desired,
        "Status": {"State": state, "Timestamp": stamp(age), "ContainerStatus": {"ContainerID": container}},
        "Spec": svc["Spec"]["TaskTemplate"],
        "NetworksAttachments": [
            {"Network": {"Spec": {"Name": "shopstream-app_backend"}}, "Addresses": ["10.0.1.5/24"]},
        ],
        "UpdatedAt": stamp(age),
    }


def read(services, tasks):
    hosts, values = {"node-a": "manager1"}, {"vault_x": SECRET}
    views, running, leaks = platform(services, tasks, NETWORKS, "shopstream", hosts, values)
    return {v["short"]: v for v in views}, running, leaks


def test_the_stacks_services_as_data_with_short_networks_ports_and_secret_files():
    auth = service("auth", networks=("n-back", "n-data"))
    edge = service("traefik", stack="shopstream-edge", replicas=1, networks=("n-pub",), ports=(443, 80))
    other = service("api", stack="other")
    views, running, leaks = read([other, edge, auth], [task(auth, 1), task(auth, 2), task(edge, 1), task(other, 1)])
    assert sorted(views) == ["auth", "traefik"], "another stack's service is not the platform's"
    assert views["auth"]["networks"] == ["backend", "shopstream-data_data"]
    assert views["traefik"]["networks"] == ["traefik-public"]
    assert views["traefik"]["ports"] == [443, 80] and views["auth"]["ports"] == []
    assert views["auth"]["secrets"] == [{"name": "shopstream_redis_password_ab12", "file": "redis_password"}]
    assert views["auth"]["name"] == "shopstream-app_auth" and views["auth"]["update"] == "none"
    assert [(t["service"], t["host"], t["addresses"]) for t in running if t["service"] == "auth"] == [
        ("auth", "manager1", {"shopstream-app_backend": ["10.0.1.5"]})
    ] * 2
    assert leaks == []


def test_a_running_task_counts_at_once_and_a_missing_replica_does_not_converge():
    auth = service("auth")
    views = read([auth], [task(auth, 1, age=1), task(auth, 2, age=2)])[0]
    assert (views["auth"]["state"], views["auth"]["replicas"]) == ("converged", "2/2")
    views, running = read([auth], [task(auth, 1), task(auth, 2, state="starting")])[:2]
    assert views["auth"]["state"] == "waiting" and "1/2 ready" in views["auth"]["reason"]
    assert sorted(t["state"] for t in running) == ["running", "starting"]


def test_a_task_the_node_never_accepted_names_the_inventory_host():
    auth = service("auth")
    views = read([auth], [task(auth, 1), task(auth, 2, state="assigned", age=120)])[0]
    assert views["auth"]["state"] == "waiting"
    assert "assigned to node manager1 for 60 s or more and never accepted" in views["auth"]["reason"]


@pytest.mark.parametrize(
    ("update", "state", "reason"),
    [
        ("updating", "waiting", "update in progress"),
        ("paused", "failed", "did not complete: paused"),
        ("rollback_started", "failed", "did not complete: rollback_started"),
        ("rollback_completed", "converged", "converged"),
        ("completed", "converged", "converged"),
    ],
)
def test_only_an_update_in_flight_or_failed_counts_against_a_service(update, state, reason):
    auth = service("auth", update=update)
    views = read([auth], [task(auth, 1), task(auth, 2)])[0]
    assert (views["auth"]["state"], views["auth"]["update"]) == (state, update)
    assert reason in views["auth"]["reason"]


def test_a_task_of_the_previous_spec_keeps_it_from_converging_and_shut_down_tasks_are_not_listed():
    auth = service("auth")
    old = task(auth, 1, container="d" * 64)
    old["Spec"] = {"ContainerSpec": {"Image": "shopstream/app:0"}}
    gone = task(auth, 2, state="shutdown", desired="shutdown")
    views, running = read([auth], [old, task(auth, 1), task(auth, 2), gone])[:2]
    assert views["auth"]["state"] == "waiting" and "still run the previous spec" in views["auth"]["reason"]
    assert len(running) == 3 and "shutdown" not in {t["state"] for t in running}


def test_a_secret_value_in_a_services_environment_is_named_never_shown():
    auth = service("auth", env=[f"REDIS_PASSWORD={SECRET}", "SHORT=abc"])
    leaks = read([auth], [task(auth, 1), task(auth, 2)])[2]
    assert leaks == ["shopstream-app_auth (service spec): vault_x"]


def test_found_in_names_long_string_values_only():
    values = {"b": "longer-than-8", "a": "longer-than-8!", "short": "abc", "number": 12345678, "list": ["longer-x"]}
    assert found_in("x=longer-than-8!; abc; 12345678", values) == ["a", "b"]
    assert found_in("", values) == []


STATUS = "Name:\tnginx\nUid:\t0\t101\t101\t101\nGid:\t0\t0\t0\t0\nCapEff:\t00000000000004c1\n"


def test_process_status_gives_the_effective_uid_and_capability_names():
    assert process_status(STATUS) == ("101", ["CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"])
    assert process_status(STATUS.replace("00000000000004c1", "0000000000000000")) == ("101", [])
    assert process_status(STATUS.replace("00000000000004c1", "000001ffffffffff"))[1][-1] == "CHECKPOINT_RESTORE"
    assert process_status("") is None
    assert process_status(None) is None
    assert process_status("Uid:\t0\t0\t0\t0\nCapEff:\tnot-hex\n") is None


def test_container_view_reads_state_health_hardening_and_leaks():
    container = {
        "Id": "e" * 64,
        "State": {"Status": "running", "Pid": 42, "Health": {"Status": "unhealthy"}},
        "HostConfig": {"ReadonlyRootfs": True, "PidsLimit": 256},
        "Config": {"Env": [f"X={SECRET}"]},
    }
    view = container_view(container, STATUS, {"vault_x": SECRET})
    assert view == {
        "id": "e" * 64,
        "state": "running",
        "health": "unhealthy",
        "read": True,
        "uid": "101",
        "caps": ["CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"],
        "read_only": True,
        "pids": 256,
        "leaks": ["vault_x"],
    }
    bare = container_view({"Id": "f" * 64, "State": {"Status": "exited"}, "HostConfig": {"PidsLimit": None}}, None, {})
    got = (bare["health"], bare["read"], bare["read_only"], bare["pids"], bare["leaks"])
    assert got == ("none", False, False, 0, [])
