"""`make deploy`'s path: site.yml on inventories/local makes this host a healthy one-node swarm.

The engine role runs here without systemd (dockerd started and restarted directly), so this
also proves that mode. The test leaves the host as `make deploy` would.
"""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from runner import docker, host_state, playbook
from runner import local_vault as read_vault

LOCAL = Path(__file__).resolve().parents[2] / "inventories" / "local"
SITE = ("site.yml", "-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass"))


@pytest.fixture(scope="module", autouse=True)
def local_vault():
    """As `make deploy` does: the local inventory's vault, made on first use; its values.

    A new vault on a host that runs a platform deployed from another checkout's vault is a new
    machine's deploy on an old machine: MariaDB's data holds the other vault's passwords, and the
    swarm's autolock key is in the other vault (a swarm locked by an engine restart cannot be
    unlocked from this one). So the platform (its stacks, their containers and volumes) and the
    swarm are removed first, as a fresh machine would not have them.
    """
    has_pass = (LOCAL / ".vault-pass").exists()
    if not has_pass:
        remove_platform()
        leave_swarm()
    run = playbook(
        "playbooks/vault_init.yml",
        "-i",
        "inventories/local",
        *(("--vault-password-file", str(LOCAL / ".vault-pass")) if has_pass else ()),
    )
    assert run.rc == 0, run.out
    return read_vault()


NETWORKS = {
    "traefik-public": ("overlay", "swarm", False),
    "frontend": ("overlay", "swarm", False),
    "backend": ("overlay", "swarm", True),
    "data": ("overlay", "swarm", True),
    "monitoring": ("overlay", "swarm", False),
    "cache": ("overlay", "swarm", True),
    "queue": ("overlay", "swarm", True),
}


def remove_platform():
    """The stacks, then their containers a locked swarm left (no stack rm reaches them), then their volumes."""
    stacks = [f"shopstream-{name}" for name in ("monitoring", "edge", "app", "data")]
    namespaces = [f"label=com.docker.stack.namespace={stack}" for stack in stacks]
    if swarm_info()["LocalNodeState"] == "active":
        docker("stack", "rm", *stacks)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not any(docker("ps", "-aq", "--filter", label).stdout.split() for label in namespaces):
                break
            time.sleep(2)
    for label in namespaces:
        containers = docker("ps", "-aq", "--filter", label).stdout.split()
        if containers:
            docker("rm", "--force", *containers)
    for stack in stacks:
        volumes = docker("volume", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}").stdout.split()
        if volumes:
            docker("volume", "rm", *volumes)


def leave_swarm():
    """This engine out of any swarm, locked or not (``--force``: a manager's leave is refused without it)."""
    if swarm_info()["LocalNodeState"] != "inactive":
        left = docker("swarm", "leave", "--force")
        assert left.returncode == 0, left.stderr
    assert swarm_info()["LocalNodeState"] == "inactive"


def service_versions():
    """Each service's version, with when and from which compose file it was last written (to tell a
    deploy from another writer when a version moves)."""
    ids = docker("service", "ls", "-q").stdout.split()
    digest = '{{index .Spec.Labels "com.shopstream.swarm.compose-digest"}}'
    fields = "{{.Spec.Name}} {{.Version.Index}} {{.UpdatedAt}} " + digest
    return docker("service", "inspect", "--format", fields, *ids).stdout


def swarm_info():
    return json.loads(docker("info", "--format", "{{json .Swarm}}").stdout)


def docker_listeners(port):
    """The local addresses on which a TCP socket listens on ``port`` (ss, of iproute2)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[3] for line in out.splitlines() if line.strip())


@pytest.mark.engine  # a fresh host's first run writes daemon.json and restarts dockerd
def test_site_converges_and_leaks_nothing(capsys, local_vault):
    # A report every 2 s while a stack is deployed: MariaDB's first start alone takes longer.
    first = playbook(*SITE, "-vvv", "-e", "stack_progress_interval=2")
    assert first.rc == 0, first.out[-5000:]
    assert "Preflight passed on 1 host(s)" in first.out
    # What the wait waited for, while it waited: the data stack's services, by name.
    progress = re.findall(r"shopstream-data after \d+ s: [^\"]*", first.out)
    assert progress and any("mariadb" in line for line in progress), first.out[-5000:]
    # verify.yml, site.yml's last step, proved the platform (health, matrix, secrets, targets, journey).
    proven = " ".join(first.out.split())
    assert "ShopStream proven: 1 node(s), 1 manager(s)" in proven, first.out[-5000:]
    assert "its notification received over the WebSocket." in proven
    assert "Left out (not probed): minio, elasticsearch, grafana, loki, promtail." in proven
    # The images come before the configs, so that each config is checked by its own tool in its
    # component's image (this host has no nginx, promtool or amtool).
    # (A second `make test` in the same clone finds those versions made: checked when they were.)
    assert (
        '"nginx: checked (nginx in 127.0.0.1:5000/shopstream/frontend:' in first.out
        or '"nginx: unchanged (its version exists; nginx checked it when it was made)"' in first.out
    ), first.out[-5000:]

    with capsys.disabled():
        print(f"\n  local site.yml: first run {first.seconds:.1f} s ", end="")

    swarm = swarm_info()
    assert swarm["LocalNodeState"] == "active"
    assert swarm["ControlAvailable"] is True
    nodes = docker("node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}").stdout.split("\n")
    assert [n for n in nodes if n] == ["Ready Leader"]

    networks = {n: json.loads(docker("network", "inspect", n).stdout)[0] for n in NETWORKS}
    assert {n: (v["Driver"], v["Scope"], v["Internal"]) for n, v in networks.items()} == NETWORKS
    assert len({v["IPAM"]["Config"][0]["Subnet"] for v in networks.values()}) == len(NETWORKS)

    # Leak check: no vault value in the -vvv output, nor in any secret's, config's or service's inspect.
    secret_names = docker("secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert len([n for n in secret_names if n.startswith("shopstream_")]) >= 11
    inspected = "".join(
        docker(kind, "inspect", *docker(kind, "ls", "-q").stdout.split()).stdout
        for kind in ("secret", "config", "service")
    )
    # Every vault_* value is a secret; the certificates (shopstream_tls_*certificate) are public.
    for name, value in local_vault.items():
        if not name.startswith("vault_"):
            continue
        assert value not in first.out, f"{name} leaked into the -vvv output"
        assert value not in inspected, f"{name} leaked into docker inspect"

    # Autolock on, its unlock key kept in the vault and printed nowhere.
    assert swarm["Cluster"]["Spec"]["EncryptionConfig"]["AutoLockManagers"] is True
    key = read_vault()["vault_shopstream_swarm_unlock_key"]
    assert key == docker("swarm", "unlock-key", "-q").stdout.strip()
    assert key not in first.out and key not in inspected

    # The management port listens on the advertise address only, not on every interface (CIS 7.3).
    listening = docker_listeners(2377)
    assert listening == [f"{swarm['NodeAddr']}:2377"], listening

    daemon = json.loads(Path("/etc/docker/daemon.json").read_text())
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert "live-restore" not in daemon


def test_site_runs_again_and_changes_nothing(capsys):
    """The rerun of the deploy above (it restarts no engine, so it runs beside the cluster)."""
    before = service_versions()
    again = playbook(*SITE, "-v")  # -v: each stack's events, which say why a stack was deployed again
    assert again.rc == 0, again.out
    assert again.changed() == 0, again.recap
    # No stack was deployed again: `docker stack deploy` raises every service's version.
    why = re.findall(r"shopstream-[a-z]+: deployed again: [^\"]*", again.out)
    assert (service_versions(), why) == (before, [])
    # The run ends with the proof, then where to find the platform.
    tasks = [line.rstrip("* ") for line in again.out.splitlines() if line.startswith("TASK [")]
    assert tasks[-2:] == [
        "TASK [shopstream.swarm.verify : Report | what was proven, or every check that failed]",
        "TASK [shopstream.swarm.verify : Report | where to find it]",
    ], tasks[-3:]
    last = again.out[again.out.rindex("TASK [shopstream.swarm.verify : Report | where to find it]") :]
    assert "ShopStream: https://" in last and "/dashboard/ (Traefik, user" in last, last[:2000]
    with capsys.disabled():
        print(f"\n  local site.yml: idempotent rerun {again.seconds:.1f} s ", end="")


def changed_tasks(out):
    """The names of the tasks and handlers that reported a change, in the order they ran."""
    names, current = [], None
    for line in out.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            current = line[line.index("[") + 1 : line.rindex("]")]
        elif line.startswith("changed: [") and current and current not in names:
            names.append(current)
    return names


def test_check_mode_reports_exactly_the_change_and_writes_nothing():
    """One setting changed: check mode reports exactly the tasks it would change, every other task
    (every layer of the pipeline) unchanged, and writes nothing."""
    # The layers that change things; verify only reads, and its own tests prove it changes nothing.
    layers = ("--skip-tags", "verify")
    before = host_state()
    run = playbook(*SITE, *layers, "--check", "--diff", "-e", "engine_log_max_file=7")
    assert run.rc == 0, run.out
    assert '+    "max-file": "7"' in run.out
    assert changed_tasks(run.out) == [
        "shopstream.swarm.engine : Configure | daemon.json, validated before it replaces the old one",
        "shopstream.swarm.engine : Engine restart "
        + ("under systemd" if Path("/proc/1/comm").read_text().strip() == "systemd" else "directly"),
    ], run.out[-4000:]
    assert run.changed() == 2, run.recap
    assert host_state() == before


@pytest.mark.engine
def test_a_killed_engine_is_started_again():
    """After dockerd died (killed, or a reboot without an init system), site.yml starts it and the swarm comes back.

    A killed engine leaves its overlay namespaces, whose VXLAN devices keep 4789/udp open:
    preflight must take them for the engine's own, not for another VXLAN user.
    """
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        pytest.skip("this host runs systemd, which starts dockerd itself; the direct mode is not used here")
    kill_engine()
    try:
        assert docker("info").returncode != 0
        assert any(n.name.startswith("1-") for n in Path("/var/run/docker/netns").iterdir()), "overlays left behind"

        # The engine and the swarm: the stacks' tasks are the swarm's to restart, and the tests
        # that follow (verify's among them) run on the platform it brought back.
        run = playbook(*SITE, "--skip-tags", "stack,verify")
        assert run.rc == 0, run.out
        # The start of dockerd, then the unlock of the swarm that autolock locked.
        assert changed_tasks(run.out) == [
            "shopstream.swarm.engine : Service | start dockerd (direct)",
            "shopstream.swarm.swarm : Unlock | give the locked manager the vault's unlock key (no_log)",
        ], run.out[-3000:]
        assert swarm_info()["LocalNodeState"] == "active"
    finally:
        if docker("info").returncode != 0:  # the role failed to: start it, so that later tests have an engine
            start_engine()


@pytest.mark.engine
def test_a_manager_whose_engine_restarted_stays_locked_until_unlock():
    """Autolock: after its engine restarts, the manager is locked (no swarm, no tasks) until
    unlock.yml gives it the vault's key; check mode names it and unlocks nothing."""
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        pytest.skip("this host runs systemd; the engine is restarted directly here")
    kill_engine()
    start_engine()
    assert swarm_info()["LocalNodeState"] == "locked"
    assert docker("service", "ls").returncode != 0

    checked = playbook("playbooks/unlock.yml", *SITE[1:], "--check")
    assert checked.rc == 0 and checked.changed() == 0, checked.out[-3000:]
    assert "Unlocked: none. Still locked (check mode unlocks nothing): localhost." in " ".join(checked.out.split())
    assert swarm_info()["LocalNodeState"] == "locked"

    run = playbook("playbooks/unlock.yml", *SITE[1:], "-vvv")
    assert run.rc == 0, run.out[-3000:]
    assert run.changed() == 1, run.recap
    assert "Unlocked: localhost. No manager is locked." in " ".join(run.out.split())
    assert read_vault()["vault_shopstream_swarm_unlock_key"] not in run.out
    assert swarm_info()["LocalNodeState"] == "active" and docker("service", "ls").returncode == 0

    again = playbook("playbooks/unlock.yml", *SITE[1:])
    assert again.rc == 0 and again.changed() == 0, again.recap


def kill_engine():
    stop = subprocess.run(
        ["start-stop-daemon", "--stop", "--signal", "KILL", "--retry", "5", "--pidfile", "/var/run/docker.pid"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert stop.returncode == 0, stop.stderr


def start_engine():
    subprocess.run(
        ["start-stop-daemon", "--start", "--oknodo", "--background", "--pidfile", "/var/run/docker.pid",
         "--startas", "/bin/sh", "--", "-c", "exec /usr/sbin/dockerd >>/var/log/dockerd.log 2>&1"],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while docker("info").returncode != 0 and time.monotonic() < deadline:
        time.sleep(1)
