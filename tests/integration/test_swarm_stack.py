"""shopstream.swarm.swarm_stack against this host's real engine (a one-node swarm, Docker 20.10).

Pattern: check mode (changed, nothing deployed) -> deploy (changed, converged, per-service report)
-> deploy again (unchanged) -> check mode again (unchanged) -> change one service (only that one
reported); a broken update rolls back and fails naming the service and the task error; an
unplaceable service times out clearly; state absent removes the stack. Stacks are named
stacktest* and removed before and after each test.
"""

import json
import subprocess
import time

import pytest
from runner import docker

MODULE = "shopstream.swarm.swarm_stack"
STACKS = ("stacktest", "stacktestrb", "stacktestnp", "stacktestab", "stacktestjob", "stacktestfull")


def stack_objects(name):
    """What of the stack exists: services, tasks and networks labelled with its namespace."""
    label = f"label=com.docker.stack.namespace={name}"
    return {
        "services": docker("service", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split(),
        "networks": docker("network", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split(),
    }


def remove_stacks():
    present = [s for s in STACKS if any(stack_objects(s).values())]
    if not present:
        return
    docker("stack", "rm", *present)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = {s: stack_objects(s) for s in present}
        if not any(any(v.values()) for v in left.values()):
            return
        for objects in left.values():  # networks the CLI could not remove while tasks still used them
            if not objects["services"]:
                for network in objects["networks"]:
                    docker("network", "rm", network)
        time.sleep(1)
    pytest.fail(f"stacks not removed: {left}")


@pytest.fixture(autouse=True)
def clean():
    remove_stacks()
    yield
    remove_stacks()


def web(image, **deploy):
    """Replicated x2 with a HEALTHCHECK that passes once the command has written /ok."""
    return {
        "image": image,
        "command": ["sh", "-c", "echo ok > /ok; sleep 3600"],
        "healthcheck": {"test": ["CMD-SHELL", "test -f /ok"], "interval": "1s", "timeout": "1s", "retries": 2},
        "deploy": {"replicas": 2, **deploy},
    }


def once(image, command="echo once"):
    return {"image": image, "command": ["sh", "-c", command], "deploy": {"restart_policy": {"condition": "none"}}}


def compose(**services):
    """A compose file; every service stops within 1s (sh and sleep as PID 1 ignore SIGTERM)."""
    return {"version": "3.8", "services": {k: dict(v, stop_grace_period="1s") for k, v in services.items()}}


def version(service):
    return int(docker("service", "inspect", service, "--format", "{{.Version.Index}}").stdout)


def spec(service):
    return json.loads(docker("service", "inspect", service, "--format", "{{json .Spec}}").stdout)


def test_check_deploy_again_check_then_change_one_service(module_run, probe_image):
    stack = compose(web=web(probe_image), once=once(probe_image))
    args = {"name": "stacktest", "compose": stack, "timeout": 90}

    planned = module_run(MODULE, args, check=True, verbosity="--diff")
    assert planned["changed"], planned
    assert planned["changed_services"] == ["stacktest_once", "stacktest_web"]
    assert planned["diff"]["after"]["stacktest_web"]["replicas"] == 2
    assert planned["diff"]["after"]["stacktest_once"]["restart_policy"]["condition"] == "none"
    assert stack_objects("stacktest") == {"services": [], "networks": []}

    first = module_run(MODULE, args)
    assert first["changed"] and not first.get("failed"), first
    assert first["changed_services"] == ["stacktest_once", "stacktest_web"]
    web_report, once_report = first["services"]["stacktest_web"], first["services"]["stacktest_once"]
    assert (web_report["state"], web_report["replicas"], web_report["running"]) == ("converged", "2/2", 2)
    assert (once_report["state"], once_report["completed"], once_report["replicas"]) == ("converged", 1, "1/1")
    assert web_report["action"] == once_report["action"] == "created"
    assert any("stacktest_web: 2/2" in line and "converged" in line for line in first["events"])

    versions = {name: version(name) for name in ("stacktest_web", "stacktest_once")}
    again = module_run(MODULE, args)
    assert not again["changed"] and again["changed_services"] == [], again
    assert {r["action"] for r in again["services"].values()} == {"unchanged"}
    # Not deployed again: `docker stack deploy` would have raised every service's version.
    assert any(
        "stacktest: not deployed again, its services are as this compose file left them" in line
        for line in again["events"]
    )
    assert {name: version(name) for name in versions} == versions
    assert not module_run(MODULE, args, check=True)["changed"]

    # Changed behind the compose file's back: deployed again, back to the compose file.
    docker("service", "update", "--detach", "--replicas", "1", "stacktest_web")
    restored = module_run(MODULE, args)
    assert restored["changed_services"] == ["stacktest_web"] and not restored.get("failed"), restored
    assert any(
        "stacktest: deployed again: stacktest_web: updated (a field this module compares)" in line
        for line in restored["events"]
    ), restored["events"]
    assert spec("stacktest_web")["Mode"]["Replicated"]["Replicas"] == 2

    changed_stack = compose(web=web(probe_image), once=once(probe_image, "echo twice"))
    planned = module_run(MODULE, dict(args, compose=changed_stack), check=True, verbosity="--diff")
    assert planned["changed"] and planned["changed_services"] == ["stacktest_once"]
    assert planned["diff"] == {
        "before": {"stacktest_once": {"args": ["sh", "-c", "echo once"]}},
        "after": {"stacktest_once": {"args": ["sh", "-c", "echo twice"]}},
    }
    second = module_run(MODULE, dict(args, compose=changed_stack))
    assert second["changed"] and not second.get("failed"), json.dumps(second)
    assert second["changed_services"] == ["stacktest_once"]
    reasons = next(line for line in second["events"] if "stacktest: deployed again: " in line)
    assert "stacktest_web: deployed from another compose file" in reasons, reasons
    assert second["services"]["stacktest_once"]["state"] == "converged"
    assert second["services"]["stacktest_web"]["action"] == "unchanged"
    assert spec("stacktest_once")["TaskTemplate"]["ContainerSpec"]["Args"][-1] == "echo twice"


def test_a_dollar_escape_reaches_the_service_as_one_dollar(module_run, probe_image):
    """The digest is added to the compose file as written: `$$` stays an escape for the CLI."""
    stack = {"version": "3.8", "services": {"web": web(probe_image)}}
    stack["services"]["web"]["command"] = ["sh", "-c", "echo $$HOME > /ok; sleep 3600"]
    deployed = module_run(MODULE, {"name": "stacktest", "compose": stack, "timeout": 90})
    assert deployed["changed"] and not deployed.get("failed"), deployed
    args = spec("stacktest_web")["TaskTemplate"]["ContainerSpec"]["Args"]
    assert args == ["sh", "-c", "echo $HOME > /ok; sleep 3600"]


def test_a_broken_update_rolls_back_and_fails_naming_the_service(module_run, probe_image):
    update = {"update_config": {"failure_action": "rollback", "monitor": "5s"}}
    good = {"image": probe_image, "command": ["sleep", "3600"], "deploy": update}
    args = {"name": "stacktestrb", "compose": compose(app=good), "timeout": 60}
    assert module_run(MODULE, args)["changed"]

    broken = dict(good, command=["sh", "-c", "exit 1"])
    result = module_run(MODULE, dict(args, compose=compose(app=broken)))
    assert result.get("failed"), result
    assert "The update of service stacktestrb_app did not complete: rollback_" in result["msg"]
    assert "task: non-zero exit (1)" in result["msg"]
    assert result["changed"] and result["changed_services"] == ["stacktestrb_app"]
    assert result["services"]["stacktestrb_app"]["state"] == "failed"

    deadline = time.monotonic() + 30
    while spec("stacktestrb_app")["TaskTemplate"]["ContainerSpec"]["Args"] != ["sleep", "3600"]:
        assert time.monotonic() < deadline, "the service did not roll back to its previous spec"
        time.sleep(1)


def test_an_unplaceable_service_times_out_clearly(module_run, probe_image):
    app = {
        "image": probe_image,
        "command": ["sleep", "3600"],
        "deploy": {"placement": {"constraints": ["node.labels.nope==1"]}},
    }
    result = module_run(MODULE, {"name": "stacktestnp", "compose": compose(app=app), "timeout": 5})
    assert result.get("failed"), result
    assert result["msg"].startswith("Stack stacktestnp did not converge within 5s: stacktestnp_app (0/1 ready"), result
    assert "no suitable node (scheduling constraints not satisfied on 1 node)" in result["msg"]


def test_bad_compose_fails_with_the_cli_error(module_run, probe_image):
    bad = compose(app={"image": probe_image, "deploy": {"mode": "sideways"}})
    result = module_run(MODULE, {"name": "stacktestab", "compose": bad, "timeout": 5})
    assert result.get("failed") and result["msg"].startswith("docker stack deploy failed for stack stacktestab:")
    assert result["stderr"]
    assert stack_objects("stacktestab")["services"] == []


def test_an_external_secret_the_swarm_lacks_is_named_before_anything_is_created(module_run, probe_image):
    """The CLI would create the stack's default network first, then fail on the secret, and leave it."""
    app = {"image": probe_image, "command": ["sleep", "3600"], "secrets": ["db"]}
    bad = dict(compose(app=app), secrets={"db": {"external": True, "name": "stacktest_nosuch"}})
    for check in (True, False):
        result = module_run(MODULE, {"name": "stacktestab", "compose": bad, "timeout": 5}, check=check)
        assert result.get("failed"), result
        assert result["msg"] == (
            "Stack stacktestab not deployed, nothing changed: service app uses the secret stacktest_nosuch, which is "
            "external and not in the swarm. Fix: create it first (the secrets, configs or networks role), or name one "
            "that exists."
        )
        assert stack_objects("stacktestab") == {"services": [], "networks": []}


def test_absent_removes_services_tasks_and_networks(module_run, probe_image):
    app = {"image": probe_image, "command": ["sleep", "3600"], "deploy": {"update_config": {"monitor": "1s"}}}
    args = {"name": "stacktestab", "compose": compose(app=app), "timeout": 30}
    assert module_run(MODULE, args)["changed"]
    absent = {"name": "stacktestab", "state": "absent", "timeout": 60}

    planned = module_run(MODULE, absent, check=True)
    assert planned["changed"] and planned["changed_services"] == ["stacktestab_app"]
    assert stack_objects("stacktestab")["services"] == ["stacktestab_app"]

    removed = module_run(MODULE, absent)
    assert removed["changed"] and not removed.get("failed"), removed
    assert stack_objects("stacktestab") == {"services": [], "networks": []}
    label = "label=com.docker.stack.namespace=stacktestab"
    assert docker("ps", "-a", "-q", "--filter", label).stdout.strip() == ""

    assert not module_run(MODULE, absent)["changed"]


def test_jobs_and_global_services_converge_and_go(module_run, probe_image):
    job = {"image": probe_image, "command": ["sh", "-c", "exit 0"], "deploy": {"mode": "replicated-job", "replicas": 2}}
    agent = {"image": probe_image, "command": ["sleep", "3600"], "deploy": {"mode": "global"}}
    args = {"name": "stacktestjob", "compose": compose(job=job, agent=agent), "timeout": 30}
    try:
        first = module_run(MODULE, args)
        assert first["changed"] and not first.get("failed"), first
        report = first["services"]["stacktestjob_job"]
        assert (report["mode"], report["state"], report["completed"], report["replicas"]) == (
            "replicated-job",
            "converged",
            2,
            "2/2",
        )
        assert first["services"]["stacktestjob_agent"]["replicas"] == "1/1"
        # docker stack deploy updates every service, and a job runs again on each update; its spec is unchanged.
        again = module_run(MODULE, args)
        assert not again["changed"] and again["services"]["stacktestjob_job"]["state"] == "converged", again

        removed = module_run(MODULE, {"name": "stacktestjob", "state": "absent", "timeout": 30})
        assert removed["changed"] and not removed.get("failed"), removed
        assert stack_objects("stacktestjob") == {"services": [], "networks": []}
        # Docker 20.10 keeps the finished tasks of removed jobs (and their containers): said, not waited for.
        assert any("finished task(s) of removed job services" in w for w in removed.get("warnings", [])), removed
    finally:
        label = "label=com.docker.stack.namespace=stacktestjob"
        for container in docker("ps", "-a", "-q", "--filter", label).stdout.split():
            docker("rm", "-f", container)


def test_check_mode_reads_back_every_compared_field_unchanged(module_run, probe_image):
    """Secrets, configs, networks, mounts, ports, resources... as the engine stores them, after
    `docker stack config` rendered the file: check mode right after a deploy must see no change."""
    docker("network", "create", "--driver", "overlay", "stacktestfull_ext")
    subprocess.run(["docker", "secret", "create", "stacktestfull_s1", "-"], input="x", text=True, check=True)
    subprocess.run(["docker", "config", "create", "stacktestfull_c1", "-"], input="y", text=True, check=True)
    app = {
        "image": probe_image,
        "entrypoint": "sh -c",
        "command": "echo ok > /ok; sleep 3600",
        "environment": {"A": "1", "B": "x y"},
        "labels": ["c.l=1"],
        "volumes": ["data:/data", "/etc:/host:ro", {"type": "tmpfs", "target": "/scratch"}],
        "ports": [{"target": 80, "published": 18081, "mode": "host"}],
        "secrets": [{"source": "s1", "target": "pw", "uid": "70", "mode": 0o400}],
        "configs": [{"source": "c1", "target": "/etc/c1.conf"}],
        "networks": ["front", "ext"],
        "healthcheck": {"test": "test -f /ok", "interval": "1s", "retries": 3},
        "deploy": {
            "endpoint_mode": "dnsrr",
            "labels": {"d.l": "2"},
            "resources": {"limits": {"cpus": "0.5", "memory": "64M"}, "reservations": {"memory": "16m"}},
            "placement": {"constraints": ["node.role == manager"], "preferences": [{"spread": "node.id"}]},
            "update_config": {"failure_action": "rollback", "monitor": "2s", "order": "start-first"},
            "rollback_config": {"parallelism": 0},
            "restart_policy": {"condition": "on-failure"},
        },
    }
    stack = dict(
        compose(app=app),
        networks={"front": {}, "ext": {"external": True, "name": "stacktestfull_ext"}},
        volumes={"data": {}},
        secrets={"s1": {"external": True, "name": "stacktestfull_s1"}},
        configs={"c1": {"external": True, "name": "stacktestfull_c1"}},
    )
    args = {"name": "stacktestfull", "compose": stack, "timeout": 60}
    try:
        deployed = module_run(MODULE, args)
        assert deployed["changed"] and not deployed.get("failed"), deployed
        planned = module_run(MODULE, args, check=True, verbosity="--diff")
        assert not planned["changed"] and planned["diff"] == {"before": {}, "after": {}}, planned
        assert not module_run(MODULE, args)["changed"]
    finally:
        remove_stacks()
        deadline = time.monotonic() + 30  # the volume is free once the node has removed the containers
        while docker("volume", "rm", "stacktestfull_data").returncode and time.monotonic() < deadline:
            if "no such volume" in docker("volume", "inspect", "stacktestfull_data").stderr.lower():
                break
            time.sleep(1)
        docker("network", "rm", "stacktestfull_ext")
        docker("secret", "rm", "stacktestfull_s1")
        docker("config", "rm", "stacktestfull_c1")
