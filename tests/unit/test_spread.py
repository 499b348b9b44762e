"""Which services' replicas share too few nodes (_spread), and the deployer's forced update of them
against the fake engine."""

import json
import time

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerClient, filters_param
from ansible_collections.shopstream.swarm.plugins.module_utils._spread import crowded, node_matches
from ansible_collections.shopstream.swarm.plugins.module_utils._stack import StackDeployer

CPU = 1_000_000_000
GIB = 1 << 30


def node(name, role="worker", state="ready", availability="active", labels=None, cpus=2, memory=4):
    return {
        "ID": f"id-{name}",
        "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
        "Description": {
            "Hostname": name,
            "Platform": {"OS": "linux", "Architecture": "x86_64"},
            "Resources": {"NanoCPUs": cpus * CPU, "MemoryBytes": memory * GIB},
            "Engine": {"Labels": {"zone": "a"}},
        },
        "Status": {"State": state},
    }


def service(name, replicas=2, constraints=(), cpus=0.5, memory=0.25, mode=None):
    template = {
        "Placement": {"Constraints": list(constraints)},
        "Resources": {"Reservations": {"NanoCPUs": int(cpus * CPU), "MemoryBytes": int(memory * GIB)}},
        "ForceUpdate": 0,
    }
    return {
        "ID": f"id-{name}",
        "Version": {"Index": 7},
        "Spec": {"Name": name, "Mode": mode or {"Replicated": {"Replicas": replicas}}, "TaskTemplate": template},
    }


def task(svc, on, state="running", desired="running"):
    return {
        "ServiceID": svc["ID"],
        "NodeID": f"id-{on}",
        "DesiredState": desired,
        "Status": {"State": state},
        "Spec": svc["Spec"]["TaskTemplate"],
    }


WORKERS = [node("w1"), node("w2"), node("m1", role="manager", labels={"tier": "edge"})]


def test_a_service_on_one_worker_of_two_is_crowded_and_one_spread_is_not():
    api, web = service("api", constraints=["node.role==worker"]), service("web", constraints=["node.role == worker"])
    tasks = [task(api, "w2"), task(api, "w2"), task(web, "w1"), task(web, "w2")]
    assert crowded([api, web], tasks, WORKERS) == [("api", 1, 2)]


def test_nodes_that_cannot_take_a_task_do_not_count():
    api = service("api", replicas=3, constraints=["node.role==worker"])
    tasks = [task(api, "w2")] * 3
    drained, down = node("w1", availability="drain"), node("w1", state="down")
    assert crowded([api], tasks, [drained, WORKERS[1]]) == []
    assert crowded([api], tasks, [down, WORKERS[1]]) == []
    # No constraint: the manager counts too, but never more nodes than replicas.
    two = service("two")
    assert crowded([two], [task(two, "w2"), task(two, "w2")], WORKERS) == [("two", 1, 2)]
    assert crowded([api], tasks, [*WORKERS, node("w3")]) == [("api", 1, 3)]
    # A full node: its reservations leave no room for one more task.
    full = node("w1", cpus=1)
    hog = service("hog", replicas=1, cpus=0.75)
    assert crowded([api, hog], [*tasks, task(hog, "w1")], [full, WORKERS[1]]) == []
    assert crowded([api, hog], [*tasks, task(hog, "w1", desired="shutdown")], [full, WORKERS[1]]) == [("api", 1, 2)]


def test_one_replica_global_services_jobs_and_services_under_way_are_left():
    one, glob = service("one", replicas=1), service("glob", mode={"Global": {}})
    job = service("job", mode={"ReplicatedJob": {"TotalCompletions": 2}})
    starting = service("starting")
    tasks = [task(one, "w1"), task(glob, "w1"), task(job, "w1"), task(starting, "w1"), task(starting, "w1", "starting")]
    assert crowded([one, glob, job, starting], tasks, WORKERS) == []


@pytest.mark.parametrize(
    ("constraints", "expected"),
    [
        (["node.role==worker"], True),
        (["node.role==Worker"], True),  # swarmkit folds the case of these keys
        (["node.role!=worker"], False),
        (["node.hostname==w1", "node.platform.os==linux"], True),
        (["node.labels.tier==edge"], False),  # w1 has no such label
        (["node.labels.tier!=edge"], True),
        (["engine.labels.zone==a", "node.platform.arch==x86_64"], True),
        (["node.id==id-w1"], True),
        (["node.ip==10.0.0.1"], None),  # a key read nowhere here: left to the scheduler
        (["node.role"], None),
    ],
)
def test_constraints(constraints, expected):
    assert node_matches(WORKERS[0], constraints) is expected


def test_a_constraint_that_cannot_be_read_leaves_the_service_alone():
    api = service("api", constraints=["node.ip==10.0.0.1"])
    assert crowded([api], [task(api, "w1"), task(api, "w1")], WORKERS) == []


def test_the_deployer_scales_each_crowded_service_up_then_back_and_waits(engine):
    api = service("api", constraints=["node.role==worker"])
    api["Spec"]["Labels"] = {"com.docker.stack.namespace": "st"}
    api["UpdateStatus"] = {"State": "completed", "StartedAt": "2026-12-04T10:00:00Z"}
    stack = filters_param(label=["com.docker.stack.namespace=st"])
    running = filters_param(**{"desired-state": ["running"]})
    engine.routes[("GET", f"/services?{stack}")] = (200, [api])
    engine.routes[("GET", f"/tasks?{running}")] = (200, [task(api, "w2"), task(api, "w2")])
    engine.routes[("GET", "/nodes")] = (200, WORKERS)
    engine.routes[("GET", "/services/id-api")] = (200, api)
    conflicts = iter([(500, {"message": "rpc error: code = Unknown desc = update out of sequence"})])
    engine.routes[("POST", "/services/id-api/update?version=7")] = lambda: next(conflicts, (200, {}))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    spread = [
        dict(task(api, node), ID=f"t{slot}", Slot=slot, Status={"State": "running", "Timestamp": stamp})
        for slot, node in ((1, "w1"), (2, "w2"))
    ]
    # The task removed by the scale back drains before it stops: still running for three reads.
    draining = dict(spread[0], ID="t3", Slot=3, DesiredState="shutdown")
    reads = iter([spread] * 2 + [[*spread, draining]] * 3)
    engine.routes[("GET", f"/tasks?{stack}")] = lambda: (200, next(reads, spread))
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    deployer = StackDeployer(client, None, "st", timeout=5, poll=0.01)
    found = deployer.crowded()
    assert found == [("api", 1, 2)]
    reports = deployer.spread(found)
    assert reports["api"]["state"] == "converged"
    assert next(reads, None) is None, "spread returned while the removed task still ran"
    posted = [json.loads(body) for method, _path, body in engine.requests if method == "POST"]
    # Up by the one node it lacks (the first try conflicted and was read again), then back.
    assert [spec["Mode"]["Replicated"]["Replicas"] for spec in posted] == [3, 3, 2]
    assert all(spec["TaskTemplate"] == api["Spec"]["TaskTemplate"] for spec in posted)
    assert "api: its replicas run on 1 node(s) of the 2 that could take them; spreading" in deployer.events[0]


def test_state_spread_deploys_nothing_and_spreads_the_crowded_services(engine, run_module):
    """swarm_stack state=spread (after a rotation's rolling updates): check mode names the crowded
    service and posts nothing; a run scales it up and back; a spread stack is left alone."""
    api = service("api", constraints=["node.role==worker"])
    api["Spec"]["Labels"] = {"com.docker.stack.namespace": "st"}
    api["UpdateStatus"] = {"State": "completed", "StartedAt": "2026-12-04T10:00:00Z"}
    stack = filters_param(label=["com.docker.stack.namespace=st"])
    running = filters_param(**{"desired-state": ["running"]})
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    spread = [
        dict(task(api, node), ID=f"t{slot}", Slot=slot, Status={"State": "running", "Timestamp": stamp})
        for slot, node in ((1, "w1"), (2, "w2"))
    ]
    engine.routes[("GET", f"/services?{stack}")] = (200, [api])
    engine.routes[("GET", f"/tasks?{running}")] = (200, [task(api, "w2"), task(api, "w2")])
    engine.routes[("GET", "/nodes")] = (200, WORKERS)
    engine.routes[("GET", "/services/id-api")] = (200, api)
    engine.routes[("POST", "/services/id-api/update?version=7")] = (200, {})
    engine.routes[("GET", f"/tasks?{stack}")] = (200, spread)
    args = {"name": "st", "state": "spread", "docker_host": "unix://" + engine.server_address, "timeout": 30}

    def posted():
        return [
            json.loads(body)["Mode"]["Replicated"]["Replicas"]
            for method, _p, body in engine.requests
            if method == "POST"
        ]

    checked = run_module("swarm_stack", dict(args, _ansible_check_mode=True))
    assert checked["changed"] and checked["services"]["api"]["action"] == "spread", checked
    assert posted() == []
    result = run_module("swarm_stack", args)
    assert result["changed"] and result["changed_services"] == ["api"], result
    assert posted() == [3, 2]
    engine.routes[("GET", f"/tasks?{running}")] = (200, spread)
    again = run_module("swarm_stack", args)
    assert not again["changed"] and again["services"] == {"api": {"action": "unchanged"}}, again
    assert posted() == [3, 2]
