"""grafana_admin against a fake engine and a fake docker command line: which container it picks, what it
runs there, and that the password never passes through a command line, the module's arguments or its
result (Grafana itself cannot run on the build machine: its image is out of reach)."""

import json
import os
import stat

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import filters_param
from ansible_collections.shopstream.swarm.plugins.modules.grafana_admin import RESET_SCRIPT, mounted_version

SERVICE = "shop-monitoring_grafana"
OLD, NEW = "shop_grafana_admin_password_aaaaaaaaaaaa", "shop_grafana_admin_password_bbbbbbbbbbbb"
MARKER = "/var/lib/grafana/.shopstream-admin-password-version"
CONTAINERS = "/containers/json?" + filters_param(label=[f"com.docker.swarm.service.name={SERVICE}"], status=["running"])


def container_spec(version, target="grafana_admin_password"):
    return {
        "Image": "grafana/grafana:11.6.1",
        "Secrets": [
            {"File": {"Name": "monitoring_password"}, "SecretName": "shop_monitoring_password_cccccccccccc"},
            {"File": {"Name": target, "UID": "472"}, "SecretID": "s-" + version[-4:], "SecretName": version},
        ],
    }


@pytest.fixture
def docker_cli(tmp_path, monkeypatch):
    """A `docker` first on PATH that logs each call (arguments, one JSON list per line) and answers
    `cat <marker>` with the content of tmp_path/marker (exit 1 when it does not exist)."""
    log, marker = tmp_path / "calls", tmp_path / "marker"
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[3:4] == ['cat']:\n"
        f"    if not os.path.exists({str(marker)!r}):\n"
        "        sys.exit(1)\n"
        f"    sys.stdout.write(open({str(marker)!r}).read())\n"
        "sys.exit(int(os.environ.get('FAKE_DOCKER_RC', '0')) if sys.argv[3:4] == ['sh'] else 0)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls, marker


def engine_with(engine, version=NEW, tasks=(("t-old", OLD, "c-old"), ("t-new", NEW, "c-new"))):
    """Grafana's service on ``version``; on this node a container per task (an update in progress:
    the old task's container still runs beside the new one's)."""
    engine.routes[("GET", f"/services/{SERVICE}")] = (
        200,
        {"ID": "svc", "Spec": {"Name": SERVICE, "TaskTemplate": {"ContainerSpec": container_spec(version)}}},
    )
    engine.routes[("GET", CONTAINERS)] = (
        200,
        [
            {"Id": cid + "0" * 60, "Status": "Up 9 seconds (healthy)", "Labels": {"com.docker.swarm.task.id": tid}}
            for tid, _v, cid in tasks
        ],
    )
    for tid, v, _cid in tasks:
        engine.routes[("GET", f"/tasks/{tid}")] = (200, {"ID": tid, "Spec": {"ContainerSpec": container_spec(v)}})


def args(engine, **extra):
    return dict({"service": SERVICE, "docker_host": "unix://" + engine.server_address, "timeout": 1}, **extra)


def test_the_mounted_version_is_found_by_the_secrets_target():
    assert mounted_version(container_spec(NEW), "grafana_admin_password") == NEW
    assert mounted_version(container_spec(NEW), "/run/secrets/grafana_admin_password") == NEW
    assert mounted_version(container_spec(NEW, target="/etc/grafana/admin"), "/etc/grafana/admin") == NEW
    assert mounted_version(container_spec(NEW), "admin_password") is None
    assert mounted_version({}, "grafana_admin_password") is None


def test_a_new_version_is_applied_in_the_container_of_the_current_task_from_the_file(engine, docker_cli, run_module):
    calls, marker = docker_cli
    marker.write_text(OLD + "\n")
    engine_with(engine)
    result = run_module("grafana_admin", args(engine))
    assert result["changed"] and result["applied"], result
    assert (result["version"], result["container"]) == (NEW, "c-new" + "0" * 7)
    container = "c-new" + "0" * 60
    assert calls() == [
        ["exec", container, "cat", MARKER],
        ["exec", container, "sh", "-c", RESET_SCRIPT, "sh", "/run/secrets/grafana_admin_password", NEW, MARKER],
    ]
    # The password goes from the file to the CLI's standard input, and the marker is written only
    # once Grafana took it.
    assert 'reset-admin-password --password-from-stdin < "$1" && printf' in RESET_SCRIPT


def test_the_version_already_applied_changes_nothing_and_check_mode_only_reads(engine, docker_cli, run_module):
    calls, marker = docker_cli
    engine_with(engine)
    marker.write_text(NEW + "\n")
    result = run_module("grafana_admin", args(engine))
    assert not result["changed"] and not result["applied"], result
    assert [call[2:] for call in calls()] == [["cat", MARKER]]
    marker.write_text(OLD + "\n")
    result = run_module("grafana_admin", args(engine, _ansible_check_mode=True))
    assert result["changed"] and result["applied"], result
    assert [call[2] for call in calls()] == ["cat", "cat"], "check mode runs nothing but the read"


def test_a_first_start_without_a_marker_is_applied_once(engine, docker_cli, run_module):
    calls, _marker = docker_cli
    engine_with(engine, tasks=(("t-new", NEW, "c-new"),))
    result = run_module("grafana_admin", args(engine))
    assert result["changed"], result
    assert [call[2] for call in calls()] == ["cat", "sh"]


def test_no_service_is_nothing_to_do(engine, docker_cli, run_module):
    calls, _marker = docker_cli
    result = run_module("grafana_admin", args(engine))
    assert not result.get("failed") and not result["changed"] and not result["service_found"], result
    assert calls() == []


def test_failures_name_the_service_and_what_to_do(engine, docker_cli, run_module, monkeypatch):
    calls, _marker = docker_cli
    # Only the old task's container runs here: the update has not reached this node, or this is not its node.
    engine_with(engine, tasks=(("t-old", OLD, "c-old"),))
    result = run_module("grafana_admin", args(engine))
    assert result["failed"] and f"No healthy container of {SERVICE} with {NEW} runs on this node" in result["msg"]
    assert calls() == []
    engine_with(engine)
    result = run_module("grafana_admin", args(engine, secret="admin_password"))  # noqa: S106 - a file name
    assert result["failed"] and "mounts no secret at /run/secrets/admin_password" in result["msg"], result
    monkeypatch.setenv("FAKE_DOCKER_RC", "1")
    result = run_module("grafana_admin", args(engine))
    assert result["failed"] and f"did not take the password of {NEW}" in result["msg"], result
