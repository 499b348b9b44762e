"""swarm_stack logic: spec normalisation and comparison, check-mode views, convergence decisions,
and the deployer against the fake engine (the Docker API mocked at its boundary) and a fake CLI."""

import copy
import json
import time

import pytest
import yaml

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerClient, filters_param
from ansible_collections.shopstream.swarm.plugins.module_utils._stack import StackDeployer
from ansible_collections.shopstream.swarm.plugins.module_utils._stack_assess import (
    assess,
    progress_line,
    task_fingerprint,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._stack_spec import (
    FINGERPRINT_LABEL,
    StackError,
    compare_services,
    compose_view,
    endpoint_changed,
    fingerprint,
    missing_externals,
    normalize_spec,
    not_deployed_as,
    parse_bytes,
    parse_duration,
    plan,
    spec_view,
    with_fingerprint,
)

DIGEST = "@sha256:" + "a" * 64

# A service as Docker 20.10 reports it after `docker stack deploy` of COMPOSE below (stack stacktesty).
API_SPEC = json.loads(
    """{"Name": "stacktesty_api", "Labels": {"com.docker.stack.image": "shopstream-test/busybox:1",
 "com.docker.stack.namespace": "stacktesty", "d.l": "2"}, "TaskTemplate": {"ContainerSpec": {"Image":
 "shopstream-test/busybox:1", "Labels": {"c.l": "1", "com.docker.stack.namespace": "stacktesty"}, "Command":
 ["sh", "-c"], "Args": ["sleep", "3600"], "Env": ["A=1", "B=x y"], "Privileges": {"CredentialSpec": null,
 "SELinuxContext": null}, "Mounts": [{"Type": "volume", "Source": "stacktesty_data", "Target": "/data",
 "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "stacktesty"}}}, {"Type": "bind", "Source": "/tmp",
 "Target": "/host", "ReadOnly": true}, {"Type": "tmpfs", "Target": "/scratch"}], "Healthcheck": {"Test":
 ["CMD-SHELL", "test -d /"], "Interval": 90000000000}, "Secrets": [{"File": {"Name": "pw", "UID": "70", "GID": "0",
 "Mode": 256}, "SecretID": "nvmc", "SecretName": "stacktestx_s1"}], "Configs": [{"File": {"Name": "c1", "UID": "0",
 "GID": "0", "Mode": 292}, "ConfigID": "0dkc", "ConfigName": "stacktesty_c1"}], "Isolation": "default"},
 "Resources": {"Limits": {"NanoCPUs": 500000000, "MemoryBytes": 67108864}, "Reservations": {"MemoryBytes":
 16777216}}, "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 0}, "Placement": {"Constraints":
 ["node.role == manager"], "Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}], "MaxReplicas": 1},
 "Networks": [{"Target": "nw0", "Aliases": ["api"]}, {"Target": "dcs", "Aliases": ["api"]}], "ForceUpdate": 0,
 "Runtime": "container"}, "Mode": {"Replicated": {"Replicas": 1}}, "UpdateConfig": {"Parallelism": 1,
 "FailureAction": "rollback", "Monitor": 5000000000, "MaxFailureRatio": 0, "Order": "start-first"},
 "RollbackConfig": {"Parallelism": 0, "FailureAction": "pause", "MaxFailureRatio": 0, "Order": "stop-first"},
 "EndpointSpec": {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 18080,
 "PublishMode": "host"}, {"Protocol": "tcp", "TargetPort": 81, "PublishedPort": 18081, "PublishMode": "host"}]}}"""
)
NETWORKS = {"nw0": "stacktesty_front", "dcs": "stacktestx_extnet"}

COMPOSE = """
version: "3.8"
services:
  api:
    image: shopstream-test/busybox:1
    entrypoint: sh -c
    command: "sleep 3600"
    environment: {A: "1", B: x y}
    labels: ["c.l=1"]
    volumes: ["data:/data", "/tmp:/host:ro", {type: tmpfs, target: /scratch}]
    ports:
      - {target: 80, published: 18080, mode: host}
      - {target: 81, published: "18081", mode: host}
    secrets: [{source: s1, target: pw, uid: "70", mode: 0400}]
    configs: [c1]
    networks: [front, ext]
    healthcheck: {test: test -d /, interval: 1m30s}
    deploy:
      endpoint_mode: dnsrr
      labels: {d.l: "2"}
      resources: {limits: {cpus: "0.5", memory: 64M}, reservations: {memory: 16m}}
      placement: {constraints: [node.role == manager], preferences: [{spread: node.id}], max_replicas_per_node: 1}
      update_config: {failure_action: rollback, monitor: 5s, order: start-first}
      rollback_config: {parallelism: 0}
      restart_policy: {condition: on-failure}
networks:
  front: {}
  ext: {external: true, name: stacktestx_extnet}
volumes:
  data: {}
secrets:
  s1: {external: true, name: stacktestx_s1}
configs:
  c1: {file: ./c1.yml}
"""

# The same file as `docker stack config` prints it: long syntax, sizes in bytes, commands split.
RENDERED = """
version: "3.8"
services:
  api:
    command: ["sleep", "3600"]
    configs: [{source: c1}]
    deploy:
      mode: replicated
      replicas: 1
      labels: {d.l: "2"}
      update_config: {failure_action: rollback, monitor: 5s, order: start-first}
      rollback_config: {parallelism: 0}
      resources: {limits: {cpus: "0.5", memory: "67108864"}, reservations: {memory: "16777216"}}
      restart_policy: {condition: on-failure}
      placement: {constraints: [node.role == manager], preferences: [{spread: node.id}], max_replicas_per_node: 1}
      endpoint_mode: dnsrr
    entrypoint: [sh, -c]
    environment: {A: "1", B: x y}
    healthcheck: {test: [CMD-SHELL, test -d /], interval: 1m30s}
    image: shopstream-test/busybox:1
    labels: {c.l: "1"}
    networks: {ext: null, front: null}
    ports:
      - {mode: host, target: 80, published: 18080, protocol: tcp}
      - {mode: host, target: 81, published: 18081}
    secrets: [{source: s1, target: pw, uid: "70", mode: 256}]
    volumes:
      - {type: volume, source: data, target: /data}
      - {type: bind, source: /tmp, target: /host, read_only: true}
      - {type: tmpfs, target: /scratch}
networks:
  ext: {name: stacktestx_extnet, external: true}
  front: {}
volumes:
  data: {}
secrets:
  s1: {name: stacktestx_s1, external: true}
configs:
  c1: {file: /tmp/stx/c1.yml}
"""


def svc(name="st_api", spec=None, index=10, update=None, sid=None, job_iteration=None):
    spec = copy.deepcopy(spec) if spec else {"Name": name, "TaskTemplate": {"ContainerSpec": {"Image": "app:1"}}}
    spec["Name"] = name
    spec.setdefault("Mode", {"Replicated": {"Replicas": 2}})
    service = {"ID": sid or f"id-{name}", "Version": {"Index": index}, "Spec": spec}
    if update:
        service["UpdateStatus"] = update
    if job_iteration is not None:
        service["JobStatus"] = {"JobIteration": {"Index": job_iteration} if job_iteration else {}}
    return service


def task(service, state="running", desired="running", slot=1, node="n1", age=60, err=None, spec=None, **extra):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - age)) + ".123456789Z"
    status = {"State": state, "Timestamp": stamp}
    if err:
        status["Err"] = err
    template = copy.deepcopy(spec if spec is not None else service["Spec"]["TaskTemplate"])
    template.pop("Runtime", None)  # tasks do not carry it
    return dict(
        {
            "ID": f"t{slot}-{state}-{age}",
            "ServiceID": service["ID"],
            "Slot": slot,
            "NodeID": node,
            "DesiredState": desired,
            "Status": status,
            "Spec": template,
            "UpdatedAt": stamp,
        },
        **extra,
    )


# Values


@pytest.mark.parametrize(
    ("text", "ns"),
    [("5s", 5 * 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8), ("1h", 3600 * 10**9), (None, 0), (7, 7)],
)
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize(("text", "size"), [("64M", 64 * 2**20), ("16m", 16 * 2**20), ("1g", 2**30), ("512", 512)])
def test_parse_bytes(text, size):
    assert parse_bytes(text) == size


def test_a_bad_duration_is_refused():
    with pytest.raises(StackError, match="duration '5 seconds'"):
        parse_duration("5 seconds")


# Normalisation and comparison


def test_a_noop_redeploy_compares_equal():
    before = svc(spec=API_SPEC, index=10)
    after = svc(spec=API_SPEC, index=17)  # docker stack deploy bumps Version even for an identical spec
    after["UpdatedAt"], after["PreviousSpec"] = "2026-01-01T00:00:00Z", copy.deepcopy(API_SPEC)
    after["Spec"]["TaskTemplate"]["Networks"].reverse()  # the CLI does not keep an order
    after["Spec"]["TaskTemplate"].pop("Runtime")
    after["Spec"]["TaskTemplate"]["ContainerSpec"]["Privileges"] = {}
    assert compare_services([before], [after]) == {}


def test_changes_created_updated_removed():
    kept, gone = svc("st_kept"), svc("st_gone")
    changed = svc("st_api")
    new_api = copy.deepcopy(changed)
    new_api["Spec"]["TaskTemplate"]["ContainerSpec"]["Args"] = ["serve"]
    assert compare_services([kept, gone, changed], [kept, new_api, svc("st_new")]) == {
        "st_api": "updated",
        "st_gone": "removed",
        "st_new": "created",
    }


def test_the_image_digest_counts_only_when_images_are_resolved():
    pinned = svc()
    pinned["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "app:1" + DIGEST
    assert compare_services([pinned], [svc()], resolve_image="never") == {}
    assert compare_services([pinned], [svc()], resolve_image="always") == {"st_api": "updated"}
    assert normalize_spec(pinned["Spec"])["TaskTemplate"]["ContainerSpec"]["Image"] == "app:1"


# Check mode: the compose file's view against the service's


@pytest.mark.parametrize("text", [COMPOSE, RENDERED], ids=["as written", "as docker stack config renders it"])
def test_compose_view_matches_the_deployed_spec(text):
    wanted = compose_view(yaml.safe_load(text), "stacktesty")
    assert wanted == {"stacktesty_api": spec_view(API_SPEC, NETWORKS)}
    view = wanted["stacktesty_api"]
    assert view["secrets"] == [{"source": "stacktestx_s1", "target": "pw", "uid": "70", "gid": "0", "mode": 0o400}]
    assert view["configs"][0]["source"] == "stacktesty_c1" and view["configs"][0]["mode"] == 0o444
    assert view["networks"] == ["stacktestx_extnet", "stacktesty_front"]
    assert view["rollback_config"]["monitor"] == "5s"  # unset: swarm's default applies


def test_check_mode_plan_noop_then_one_change_with_a_minimal_diff():
    existing = [svc("stacktesty_api", spec=API_SPEC)]
    compose = yaml.safe_load(COMPOSE)
    assert plan(compose, "stacktesty", existing, NETWORKS) == ({}, {}, {})

    compose["services"]["api"]["command"] = "sleep 60"
    compose["services"]["api"]["deploy"]["replicas"] = 3
    compose["services"]["worker"] = {"image": "app:2"}
    changes, before, after = plan(compose, "stacktesty", existing, NETWORKS)
    assert changes == {"stacktesty_api": "updated", "stacktesty_worker": "created"}
    assert before == {"stacktesty_api": {"args": ["sleep", "3600"], "replicas": 1}}
    assert after["stacktesty_api"] == {"args": ["sleep", "60"], "replicas": 3}
    assert after["stacktesty_worker"]["networks"] == ["stacktesty_default"]
    assert after["stacktesty_worker"]["mode"] == "replicated" and after["stacktesty_worker"]["replicas"] == 1


def test_check_mode_sees_a_change_of_user_capabilities_or_read_only_root():
    spec = json.loads(json.dumps(API_SPEC))
    container = spec["TaskTemplate"]["ContainerSpec"]
    container.update(
        {"User": "10001", "CapabilityAdd": ["CAP_NET_BIND_SERVICE"], "CapabilityDrop": ["ALL"], "ReadOnly": True}
    )
    compose = yaml.safe_load(COMPOSE)
    compose["services"]["api"].update(
        {"user": "10001", "cap_add": ["NET_BIND_SERVICE"], "cap_drop": ["ALL"], "read_only": True}
    )
    assert plan(compose, "stacktesty", [svc("stacktesty_api", spec=spec)], NETWORKS) == ({}, {}, {})
    changes, before, after = plan(yaml.safe_load(COMPOSE), "stacktesty", [svc("stacktesty_api", spec=spec)], NETWORKS)
    assert changes == {"stacktesty_api": "updated"}
    assert before["stacktesty_api"] == {
        "user": "10001", "cap_add": ["NET_BIND_SERVICE"], "cap_drop": ["ALL"], "read_only": True
    }  # fmt: skip
    assert after["stacktesty_api"] == {"user": None, "cap_add": [], "cap_drop": [], "read_only": False}


def test_a_health_timing_set_outside_the_compose_file_is_a_change_and_one_set_in_it_is_not():
    # `docker service update --health-interval 60s` on a service whose check is its image's: the
    # spec holds the interval without a test. The next deploy resets it, so the plan must see it.
    spec = json.loads(json.dumps(API_SPEC))
    spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = {"Interval": 60 * 10**9}
    compose = yaml.safe_load(COMPOSE)
    del compose["services"]["api"]["healthcheck"]
    changes, before, after = plan(compose, "stacktesty", [svc("stacktesty_api", spec=spec)], NETWORKS)
    assert changes == {"stacktesty_api": "updated"}
    assert before["stacktesty_api"]["healthcheck"]["interval"] == "60s"
    assert after["stacktesty_api"] == {"healthcheck": None}
    # The same interval in the compose file, the test left to the image: nothing to do.
    compose["services"]["api"]["healthcheck"] = {"interval": "60s"}
    assert plan(compose, "stacktesty", [svc("stacktesty_api", spec=spec)], NETWORKS) == ({}, {}, {})


def test_check_mode_removal_only_with_prune():
    existing = [svc("stacktesty_api", spec=API_SPEC), svc("stacktesty_old")]
    compose = yaml.safe_load(COMPOSE)
    assert plan(compose, "stacktesty", existing, NETWORKS)[0] == {}
    assert plan(compose, "stacktesty", existing, NETWORKS, prune=True)[0] == {"stacktesty_old": "removed"}


def test_compose_short_ports_and_defaults():
    compose = {"services": {"web": {"image": "nginx", "ports": ["8080:80", "9000-9001:90-91/udp", "443"]}}}
    view = compose_view(compose, "s")["s_web"]
    assert view["ports"] == [
        {"target": 80, "published": 8080, "protocol": "tcp", "mode": "ingress"},
        {"target": 90, "published": 9000, "protocol": "udp", "mode": "ingress"},
        {"target": 91, "published": 9001, "protocol": "udp", "mode": "ingress"},
        {"target": 443, "published": 0, "protocol": "tcp", "mode": "ingress"},
    ]
    assert view["update_config"] == {
        "parallelism": 1,
        "delay": "0s",
        "failure_action": "pause",
        "monitor": "5s",
        "max_failure_ratio": 0.0,
        "order": "stop-first",
    }
    assert view["healthcheck"] is None and view["endpoint_mode"] == "vip"


# Convergence decisions


def test_replicated_converges_when_all_replicas_run_the_current_spec():
    service = svc()
    report = assess(service, [task(service, slot=1), task(service, slot=2)])
    assert (report["state"], report["replicas"], report["running"]) == ("converged", "2/2", 2)


def test_a_task_assigned_long_ago_and_never_accepted_names_its_node_and_the_fix():
    """moby/moby#34864: after an engine restart, a node may leave the tasks it is given assigned;
    a task assigned for less than a minute is only being handed over."""
    service = svc()
    stuck = assess(service, [task(service, slot=1), task(service, "assigned", slot=2, node="nodeA", age=61)])
    assert stuck["state"] == "waiting" and "1/2 ready" in stuck["reason"]
    assert "assigned to node nodeA for 60 s or more and never accepted" in stuck["reason"]
    assert "moby/moby#34864" in stuck["reason"] and "restart its engine" in stuck["reason"]
    named = assess(service, [task(service, "assigned", slot=2, node="nodeA", age=90)], nodes={"nodeA": "manager1"})
    assert "assigned to node manager1 for 60 s or more" in named["reason"]
    starting = task(service, "starting", slot=2, age=5)
    starting["Status"]["Message"] = "starting"
    assert assess(service, [task(service, slot=1), starting])["reason"] == "1/2 ready; task starting"
    handed = assess(service, [task(service, slot=1), task(service, "assigned", slot=2, node="nodeA", age=5)])
    assert "never accepted" not in handed["reason"]
    shut = assess(service, [task(service, slot=1), task(service, "assigned", "shutdown", slot=2, age=600)])
    assert "never accepted" not in shut["reason"]


def test_tasks_running_for_less_than_the_monitor_do_not_count_yet():
    service = svc()
    report = assess(service, [task(service, slot=1), task(service, slot=2, age=1)])
    assert report["state"] == "waiting"
    assert "1/2 ready" in report["reason"] and "less than the update monitor (5s)" in report["reason"]


def test_tasks_of_the_previous_spec_keep_it_waiting_the_stale_completed_race():
    old_template = {"ContainerSpec": {"Image": "app:1", "Args": ["old"]}}
    service = svc(update={"State": "completed", "StartedAt": "t1"})
    old = [task(service, slot=1, spec=old_template), task(service, slot=2, spec=old_template)]
    # Right after the deploy, UpdateStatus still shows the previous update's 'completed'.
    report = assess(service, old, previous_started="t1")
    assert report["state"] == "waiting" and report["update_state"] is None
    assert "2 task(s) still run the previous spec" in report["reason"]
    fresh = svc(update={"State": "completed", "StartedAt": "t2"})
    assert assess(fresh, [task(fresh, slot=1), task(fresh, slot=2)], previous_started="t1")["state"] == "converged"


def test_a_ports_change_waits_for_its_update_since_tasks_do_not_show_it():
    before = svc()
    after = copy.deepcopy(before)
    after["Spec"]["EndpointSpec"] = {"Ports": [{"TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}]}
    assert endpoint_changed([before], [after]) == {"id-st_api"}
    assert endpoint_changed([before], [copy.deepcopy(before)]) == set()
    tasks = [task(after, slot=1), task(after, slot=2)]
    waiting = assess(after, tasks, previous_started=None, expect_update=True)
    assert waiting["state"] == "waiting" and waiting["reason"] == "waiting for the update to start"
    after["UpdateStatus"] = {"State": "completed", "StartedAt": "t2"}
    assert assess(after, tasks, previous_started=None, expect_update=True)["state"] == "converged"


def test_an_update_in_progress_waits():
    service = svc(update={"State": "updating", "StartedAt": "t2"})
    report = assess(service, [task(service, slot=1), task(service, slot=2)], previous_started="t1")
    assert report["state"] == "waiting" and report["reason"].startswith("update in progress")


@pytest.mark.parametrize("state", ["rollback_started", "rollback_completed", "rollback_paused", "paused"])
def test_rollback_or_pause_fails_naming_the_service_and_the_task_error(state):
    service = svc(update={"State": state, "StartedAt": "t2", "Message": "update rolled back due to failure"})
    tasks = [task(service, slot=1), task(service, state="failed", desired="shutdown", err="task: non-zero exit (1)")]
    report = assess(service, tasks, previous_started="t1")
    assert report["state"] == "failed"
    assert report["reason"] == (
        f"The update of service st_api did not complete: {state} (update rolled back due to failure); "
        "task error: task: non-zero exit (1)."
    )


def test_a_stale_rollback_of_an_earlier_deploy_is_not_this_deploys_failure():
    service = svc(update={"State": "rollback_completed", "StartedAt": "t1"})
    assert assess(service, [task(service, slot=1), task(service, slot=2)], previous_started="t1")["state"] == (
        "converged"
    )


def one_shot(condition="none"):
    service = svc("st_migrate")
    service["Spec"]["Mode"] = {"Replicated": {"Replicas": 1}}
    service["Spec"]["TaskTemplate"]["RestartPolicy"] = {"Condition": condition}
    return service


def test_a_one_shot_service_is_done_when_its_task_completed():
    service = one_shot()
    report = assess(service, [task(service, state="complete", desired="shutdown")])
    assert (report["state"], report["completed"], report["replicas"]) == ("converged", 1, "1/1")


def test_a_failed_one_shot_task_fails():
    service = one_shot()
    report = assess(service, [task(service, state="failed", desired="shutdown", err="task: non-zero exit (3)")])
    assert report["state"] == "failed"
    assert report["reason"] == (
        "A task of service st_migrate failed and its restart condition is none: task: non-zero exit (3)."
    )


def test_a_one_shot_update_paused_by_its_own_completion_is_not_a_failure():
    # docker/cli#5299: swarm's updater counts a task that exits within the monitor as a failure.
    service = one_shot()
    service["UpdateStatus"] = {
        "State": "paused",
        "StartedAt": "t2",
        "Message": "update paused due to failure or early termination of task abc",
    }
    report = assess(service, [task(service, state="complete", desired="shutdown")], previous_started="t1")
    assert report["state"] == "converged"
    service["Spec"]["TaskTemplate"]["RestartPolicy"] = {"Condition": "any"}  # a long-running service: a failure
    assert assess(service, [task(service, state="complete", desired="shutdown")], "t1")["state"] == "failed"


def test_replicated_job_counts_completions_of_the_current_iteration():
    service = svc("st_job", job_iteration=2)
    service["Spec"]["Mode"] = {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 2}}
    old = task(service, state="complete", desired="complete", slot=9, JobIteration={"Index": 1})
    done = task(service, state="complete", desired="complete", JobIteration={"Index": 2})
    report = assess(service, [old, done])
    assert (report["state"], report["replicas"]) == ("waiting", "1/2")
    second = dict(task(service, state="complete", desired="complete", slot=2, JobIteration={"Index": 2}), ID="x")
    assert assess(service, [old, done, second])["state"] == "converged"


def test_global_job_waits_for_every_node_and_a_failed_task_without_restart_fails():
    service = svc("st_gjob", job_iteration=0)
    service["Spec"]["Mode"] = {"GlobalJob": {}}
    n1 = task(service, state="complete", desired="complete", slot=None, node="n1")
    n2 = task(service, state="running", desired="complete", slot=None, node="n2")
    assert assess(service, [n1, n2])["state"] == "waiting"
    n2 = task(service, state="complete", desired="complete", slot=None, node="n2")
    assert assess(service, [n1, n2])["state"] == "converged"
    service["Spec"]["TaskTemplate"]["RestartPolicy"] = {"Condition": "none"}
    n2 = task(service, state="failed", desired="complete", slot=None, node="n2", err="exit 2")
    assert assess(service, [n1, n2])["state"] == "failed"


def test_global_service_on_every_node_it_was_scheduled_to():
    service = svc("st_agent")
    service["Spec"]["Mode"] = {"Global": {}}
    assert "no task scheduled yet" in assess(service, [])["reason"]
    tasks = [task(service, slot=None, node="n1"), task(service, state="pending", slot=None, node="n2")]
    report = assess(service, tasks)
    assert (report["state"], report["replicas"], report["desired"]) == ("waiting", "1/2", 2)
    tasks[1] = task(service, slot=None, node="n2")
    assert assess(service, tasks)["state"] == "converged"


def test_waiting_reason_names_the_scheduler_error():
    service = svc()
    pending = task(service, state="pending", err="no suitable node (scheduling constraints not satisfied on 1 node)")
    report = assess(service, [pending])
    assert report["reason"] == (
        "0/2 ready; task pending: no suitable node (scheduling constraints not satisfied on 1 node)"
    )
    assert progress_line(report) == f"st_api: 0/2 replicated - {report['reason']}"


def test_task_fingerprint_ignores_runtime_and_empty_fields():
    template = {"ContainerSpec": {"Image": "a", "Privileges": {"CredentialSpec": None}}, "ForceUpdate": 0}
    assert task_fingerprint(dict(template, Runtime="container")) == task_fingerprint({"ContainerSpec": {"Image": "a"}})
    assert task_fingerprint(dict(template, ForceUpdate=1)) != task_fingerprint(template)


# The deployer against the fake engine and a fake CLI

STACK_FILTER = filters_param(label=["com.docker.stack.namespace=st"])


class FakeCLI:
    def __init__(self, answers=None):
        self.calls = []
        self.answers = list(answers or [])

    def __call__(self, args, data=None):
        self.calls.append((args, data))
        return self.answers.pop(0) if self.answers else (0, "", "")


def deployer(engine, cli=None, timeout=5):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    return StackDeployer(client, cli or FakeCLI(), "st", timeout=timeout, poll=0.01)


def test_deploy_runs_the_cli_with_the_options():
    cli = FakeCLI()
    d = StackDeployer(None, cli, "st")
    d.deploy("services: {}", prune=True, resolve_image="never", with_registry_auth=True)
    args, data = cli.calls[0]
    assert args == [
        "docker",
        "stack",
        "deploy",
        "--compose-file",
        "-",
        "--resolve-image",
        "never",
        "--detach=true",
        "--prune",
        "--with-registry-auth",
        "st",
    ]
    assert data == "services: {}"


def test_an_old_cli_without_detach_is_retried_and_cli_failures_report_stderr():
    cli = FakeCLI([(125, "", "unknown flag: --detach=true\n"), (0, "Creating service st_api\n", "")])
    d = StackDeployer(None, cli, "st")
    d.deploy("x")
    assert "--detach=true" not in cli.calls[1][0] and d.warnings == []
    cli = FakeCLI([(1, "out", "yaml: line 3: mapping values are not allowed\n")])
    with pytest.raises(StackError) as failure:
        StackDeployer(None, cli, "st").deploy("x")
    assert str(failure.value) == "docker stack deploy failed for stack st: yaml: line 3: mapping values are not allowed"
    assert "mapping values" in failure.value.stderr


def test_a_service_changed_during_the_deploy_is_deployed_again_a_bounded_number_of_times():
    conflict = (1, "", "failed to update service st_api: Error response from daemon: rpc error: code = Unknown "
                       "desc = update out of sequence\n")  # fmt: skip
    cli = FakeCLI([conflict, (0, "Updating service st_api\n", "")])
    d = StackDeployer(None, cli, "st", poll=0.01)
    d.deploy("x")
    assert len(cli.calls) == 2 and cli.calls[0] == cli.calls[1]
    assert "update out of sequence" in d.events[0] and d.warnings == []
    cli = FakeCLI([conflict] * 6)
    with pytest.raises(StackError, match="update out of sequence"):
        StackDeployer(None, cli, "st", poll=0.01).deploy("x")
    assert len(cli.calls) == 5


def test_cli_stderr_on_success_becomes_a_warning():
    d = StackDeployer(None, FakeCLI([(0, "", "Ignoring unsupported options: build\n")]), "st")
    d.deploy("x")
    assert d.warnings == ["docker stack deploy: Ignoring unsupported options: build"]


def test_converge_reports_progress_once_per_change(engine):
    service = svc("st_api", update={"State": "updating", "StartedAt": "t2"})
    done = dict(service, UpdateStatus={"State": "completed", "StartedAt": "t2"})
    answers = iter([[service], [service], [done]])
    engine.routes[("GET", f"/services?{STACK_FILTER}")] = lambda: (200, next(answers))
    engine.routes[("GET", f"/tasks?{STACK_FILTER}")] = (200, [task(service, slot=1), task(service, slot=2)])
    d = deployer(engine)
    reports = d.converge({"id-st_api": "t1"})
    assert reports["st_api"]["state"] == "converged" and reports["st_api"]["update_state"] == "completed"
    assert [line.split("] ", 1)[1] for line in d.events] == [
        "st_api: 2/2 replicated, update updating - update in progress",
        "st_api: 2/2 replicated, update completed - converged",
    ]


def test_converge_times_out_naming_each_service_and_why(engine):
    service = svc("st_api")
    pending = task(service, state="pending", err="No such image: app:1")
    engine.routes[("GET", f"/services?{STACK_FILTER}")] = (200, [service, one_shot()])
    engine.routes[("GET", f"/tasks?{STACK_FILTER}")] = (200, [pending])
    with pytest.raises(StackError) as failure:
        deployer(engine, timeout=0).converge({})
    assert str(failure.value) == (
        "Stack st did not converge within 0s: st_api (0/2 ready; task pending: No such image: app:1); "
        "st_migrate (0/1 ready)."
    )
    assert set(failure.value.reports) == {"st_api", "st_migrate"}


def test_converge_fails_at_once_on_a_rollback(engine):
    service = svc("st_api", update={"State": "rollback_started", "StartedAt": "t2", "Message": "rolling back"})
    engine.routes[("GET", f"/services?{STACK_FILTER}")] = (200, [service])
    engine.routes[("GET", f"/tasks?{STACK_FILTER}")] = (200, [task(service, state="failed", err="exit 1")])
    with pytest.raises(StackError, match=r"service st_api did not complete: rollback_started \(rolling back\)"):
        deployer(engine, timeout=30).converge({"id-st_api": "t1"})


def test_remove_waits_for_tasks_then_removes_leftover_networks(engine):
    network = {"Id": "net1", "Name": "st_default"}
    tasks = iter([[{"ID": "t"}], []])
    networks = iter([[network], []])
    engine.routes[("GET", f"/services?{STACK_FILTER}")] = (200, [])
    engine.routes[("GET", f"/tasks?{STACK_FILTER}")] = lambda: (200, next(tasks, []))
    engine.routes[("GET", f"/containers/json?all=1&{STACK_FILTER}")] = (200, [])
    engine.routes[("GET", f"/networks?{STACK_FILTER}")] = lambda: (200, next(networks, []))
    engine.routes[("GET", f"/secrets?{STACK_FILTER}")] = (200, [])
    engine.routes[("GET", f"/configs?{STACK_FILTER}")] = (200, [])
    engine.routes[("DELETE", "/networks/net1")] = (204, None)
    cli = FakeCLI()
    d = deployer(engine, cli)
    d.remove()
    assert cli.calls[0][0] == ["docker", "stack", "rm", "--detach=true", "st"]
    assert ("DELETE", "/networks/net1", b"") in engine.requests
    assert d.events[-1].endswith("stack st removed")


@pytest.mark.parametrize(
    "stderr",
    [
        "docker: unknown command: docker stack config\n",
        # Debian's 20.10 CLI: `stack` parses the flags first.
        "unknown flag: --compose-file\nSee 'docker stack --help'.\n",
    ],
)
def test_rendered_falls_back_to_the_file_without_stack_config(stderr):
    cli = FakeCLI([(1, "", stderr), (1, "", stderr)])
    d = StackDeployer(None, cli, "st")
    assert d.rendered("services: {a: {image: x}}") == {"services": {"a": {"image": "x"}}}
    assert d.warnings
    # Outside check mode (the deploy's digest) it says nothing.
    quiet = StackDeployer(None, cli, "st")
    assert quiet.rendered("services: {a: {image: x}}", warn=False) == {"services": {"a": {"image": "x"}}}
    assert quiet.warnings == []


def test_remove_reports_finished_tasks_of_removed_jobs_instead_of_waiting(engine):
    job_task = {"ID": "j1", "JobIteration": {}, "DesiredState": "complete", "Status": {"State": "complete"}}
    engine.routes[("GET", f"/services?{STACK_FILTER}")] = (200, [])
    engine.routes[("GET", f"/tasks?{STACK_FILTER}")] = (200, [job_task])
    engine.routes[("GET", f"/containers/json?all=1&{STACK_FILTER}")] = (
        200,
        [{"Id": "c1", "Labels": {"com.docker.swarm.task.id": "j1"}}],
    )
    for path in ("networks", "secrets", "configs"):
        engine.routes[("GET", f"/{path}?{STACK_FILTER}")] = (200, [])
    d = deployer(engine, timeout=0)
    d.remove()
    assert d.warnings and "Swarm keeps 1 finished task(s) of removed job services" in d.warnings[0]


def test_external_objects_the_swarm_lacks_are_named_with_their_service():
    compose = {
        "services": {
            "api": {"secrets": [{"source": "db"}, {"source": "local"}], "configs": ["conf"], "networks": ["edge"]},
            "web": {"secrets": ["db"], "networks": {"default": None}},
        },
        "secrets": {"db": {"external": True, "name": "shop_db_1"}, "local": {"file": "./x"}},
        "configs": {"conf": {"external": True}},
        "networks": {"edge": {"external": True, "name": "traefik-public"}},
    }
    everything = {"secrets": {"shop_db_1"}, "configs": {"conf"}, "networks": {"traefik-public"}}
    assert missing_externals(compose, everything) == []
    assert missing_externals(compose, {}) == [
        "service api uses the secret shop_db_1, which is external and not in the swarm",
        "service web uses the secret shop_db_1, which is external and not in the swarm",
        "service api uses the config conf, which is external and not in the swarm",
        "service api uses the network traefik-public, which is external and not in the swarm",
    ]


# The compose digest: the same compose file again, on services as it left them, is not deployed.


def test_the_digest_follows_the_compose_file_and_the_options():
    compose = {"version": "3.8", "services": {"web": {"image": "a:1"}}}
    digest = fingerprint(compose, {"prune": False})
    assert digest == fingerprint(copy.deepcopy(compose), {"prune": False}) and len(digest) == 16
    assert digest != fingerprint(compose, {"prune": True})
    assert digest != fingerprint({"version": "3.8", "services": {"web": {"image": "a:2"}}}, {"prune": False})


def test_each_service_carries_the_digest_whatever_its_labels_form():
    compose = {"services": {"a": {"deploy": {"labels": ["x=1", "flag"]}}, "b": {"image": "b"}}}
    labelled = with_fingerprint(compose, "d1")
    assert labelled["services"]["a"]["deploy"]["labels"] == {"x": "1", "flag": "", FINGERPRINT_LABEL: "d1"}
    assert labelled["services"]["b"]["deploy"]["labels"] == {FINGERPRINT_LABEL: "d1"}
    assert "labels" in compose["services"]["a"]["deploy"] and "deploy" not in compose["services"]["b"]


def test_not_deployed_as_names_each_service_missing_extra_or_from_another_compose_file():
    compose = {"services": {"a": {}, "b": {}}}

    def svc(name, digest):
        return {"Spec": {"Name": name, "Labels": {FINGERPRINT_LABEL: digest} if digest else {}}}

    assert not_deployed_as(compose, "s", [svc("s_a", "d1"), svc("s_b", "d1")], "d1") == []
    assert not_deployed_as(compose, "s", [svc("s_a", "d1"), svc("s_b", "d0")], "d1") == [
        "s_b: deployed from another compose file (d0, this one d1)"
    ]
    assert not_deployed_as(compose, "s", [svc("s_a", "d1")], "d1") == ["s_b: not in the swarm"]
    assert not_deployed_as(compose, "s", [svc("s_a", "d1"), svc("s_b", "d1"), svc("s_c", "d1")], "d1") == [
        "s_c: not in the compose file"
    ]
    assert not_deployed_as(compose, "s", [svc("s_a", None), svc("s_b", "d1")], "d1") == [
        "s_a: deployed from another compose file (no digest, this one d1)"
    ], "deployed before digests"
    assert not_deployed_as({"services": {}}, "s", [], "d1") == ["the compose file has no service"]


def test_the_digest_label_is_no_change_of_its_own():
    labels = {"com.docker.stack.namespace": "s", "team": "shop"}
    old = {"Name": "s_a", "Labels": dict(labels, **{FINGERPRINT_LABEL: "d0"})}
    new = {"Name": "s_a", "Labels": dict(labels, **{FINGERPRINT_LABEL: "d1"})}
    assert normalize_spec(old) == normalize_spec(new)
    assert spec_view(old)["labels"] == spec_view(new)["labels"] == {"team": "shop"}
