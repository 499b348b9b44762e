"""`make deploy`'s path: site.yml on inventories/local makes this host a healthy one-node swarm.

The engine role runs here without systemd (dockerd started and restarted directly), so this
also proves that mode. The test leaves the host as `make deploy` would.
"""

import json
import subprocess
from pathlib import Path

import pytest
from runner import docker, host_state, playbook

SITE = ("site.yml", "-i", "inventories/local")


def swarm_info():
    return json.loads(docker("info", "--format", "{{json .Swarm}}").stdout)


def test_site_converges_then_changes_nothing(capsys):
    first = playbook(*SITE)
    assert first.rc == 0, first.out
    assert "Preflight passed on 1 host(s)" in first.out

    again = playbook(*SITE)
    assert again.rc == 0, again.out
    assert again.changed() == 0, again.recap
    with capsys.disabled():
        print(f"\n  local site.yml: first run {first.seconds:.1f} s, idempotent rerun {again.seconds:.1f} s ", end="")

    swarm = swarm_info()
    assert swarm["LocalNodeState"] == "active"
    assert swarm["ControlAvailable"] is True
    nodes = docker("node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}").stdout.split("\n")
    assert [n for n in nodes if n] == ["Ready Leader"]

    daemon = json.loads(Path("/etc/docker/daemon.json").read_text())
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert "live-restore" not in daemon


def test_check_mode_reports_a_change_and_writes_nothing():
    before = host_state()
    run = playbook(*SITE, "--check", "--diff", "-e", "engine_log_max_file=7")
    assert run.rc == 0, run.out
    assert run.changed() >= 2, "the daemon.json change and the restart it needs"
    assert '+    "max-file": "7"' in run.out
    assert host_state() == before

    unchanged = playbook(*SITE, "--check")
    assert unchanged.rc == 0, unchanged.out
    assert unchanged.changed() == 0, unchanged.recap


def test_a_stopped_engine_is_started_again():
    """After a reboot without an init system, site.yml starts dockerd and the swarm comes back."""
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        pytest.skip("this host runs systemd, which starts dockerd itself; the direct mode is not used here")
    stop = subprocess.run(
        ["start-stop-daemon", "--stop", "--retry", "TERM/60/KILL/5", "--pidfile", "/var/run/docker.pid"],
        capture_output=True,
        text=True,
    )
    assert stop.returncode == 0, stop.stderr
    assert docker("info").returncode != 0

    run = playbook(*SITE)
    assert run.rc == 0, run.out
    assert run.changed() == 1, "only the start of dockerd"
    assert swarm_info()["LocalNodeState"] == "active"
