"""playbooks/verify.yml is the platform's proof: it must fail, naming what broke, when the platform breaks.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. The test breaks the network matrix for a moment (the SPA joins `data`), and always restores it
and waits for the service to converge again.
"""

import json
import time
from pathlib import Path

import pytest
from runner import docker, playbook

LOCAL = Path(__file__).resolve().parents[2] / "inventories" / "local"
VERIFY = ("playbooks/verify.yml", "-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass"))
FRONTEND = "shopstream-app_frontend"


@pytest.fixture(scope="module")
def deployed():
    if docker("info").returncode != 0:
        pytest.skip("the Docker engine does not answer")
    if not (LOCAL / ".vault-pass").exists():
        pytest.skip("inventories/local has no vault: run `make deploy` first")
    if docker("service", "inspect", FRONTEND).returncode != 0:
        pytest.skip(f"{FRONTEND} is not deployed: run `make deploy` first")


def converged(service, timeout=300):
    """Wait until the service's update is over and every replica runs; its networks as names."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spec = json.loads(docker("service", "inspect", service).stdout)[0]
        state = (spec.get("UpdateStatus") or {}).get("State", "completed")
        replicas = docker("service", "ls", "--filter", f"name={service}", "--format", "{{.Replicas}}").stdout.split()
        if state not in ("updating", "rollback_started") and replicas and len(set(replicas[0].split("/"))) == 1:
            return spec
        time.sleep(2)
    raise AssertionError(f"{service} did not converge in {timeout} s")


def networks_of(spec):
    ids = [n["Target"] for n in spec["Spec"]["TaskTemplate"].get("Networks", [])]
    names = docker("network", "inspect", "--format", "{{.Name}}", *ids).stdout.split()
    return sorted(names)


def test_verify_fails_naming_frontend_and_mariadb_when_the_spa_joins_data(deployed):
    before = networks_of(converged(FRONTEND))
    assert "data" not in before, f"{FRONTEND} is already on data: the platform is not as deployed ({before})"
    try:
        update = docker("service", "update", "--quiet", "--network-add", "data", FRONTEND)
        assert update.returncode == 0, update.stderr
        assert "data" in networks_of(converged(FRONTEND))

        run = playbook(*VERIFY)

        assert run.rc != 0, run.out[-3000:]
        # The spec check and a probe from inside a running SPA container, both named in the report.
        assert "frontend joins data, which the matrix does not allow" in run.out, run.out[-3000:]
        assert "frontend reached mariadb (" in run.out, run.out[-3000:]
        assert "which the matrix forbids" in run.out
        assert "Verify failed" in run.out
        # Read-only, even when it fails.
        assert run.changed() == 0, run.recap
    finally:
        docker("service", "update", "--quiet", "--network-rm", "data", FRONTEND)
        assert networks_of(converged(FRONTEND)) == before


def test_verify_passes_on_the_converged_platform_and_changes_nothing(deployed):
    """The proof itself: every check passes on the platform as deployed, with changed=0."""
    run = playbook(*VERIFY)
    assert run.rc == 0, run.out[-4000:]
    assert run.changed() == 0, run.recap
    assert "ShopStream proven:" in run.out
    for proven in ("probes from inside containers", "every Prometheus target up", "its notification received"):
        assert proven in run.out


def test_verify_of_an_inventory_without_stacks_proves_the_swarm_alone(deployed):
    """An inventory that deploys no stack (stack_enabled: false) gets the swarm's proof, not a stack's misses."""
    run = playbook(*VERIFY, "-e", "stack_enabled=false")
    assert run.rc == 0, run.out[-4000:]
    assert "No stack is deployed by this inventory (stack_enabled: false)." in " ".join(run.out.split())


# --- shopstream.swarm.platform_journey through Ansible (no platform needed) --------------------------

PASSWORD = "not-the-real-demo-password"  # noqa: S105 - must never be shown


def closed_port():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_platform_journey_in_check_mode_walks_nothing(module_run):
    result = module_run(
        "shopstream.swarm.platform_journey", {"url": f"http://127.0.0.1:{closed_port()}", "password": PASSWORD}, True
    )
    assert not result.get("failed") and result["changed"] is False, result
    assert result["msg"].startswith("Check mode: the journey through http://127.0.0.1:") and result["steps"] == []
    assert PASSWORD not in json.dumps(result)


def test_platform_journey_names_the_failed_step_and_hides_the_password(module_run):
    url = f"http://127.0.0.1:{closed_port()}"
    result = module_run("shopstream.swarm.platform_journey", {"url": url, "password": PASSWORD}, verbosity="-vvv")
    assert result["failed"] and result["failed_step"] == "login", result
    assert result["msg"].startswith(f"The journey through {url} failed at login: ConnectionRefusedError"), result
    assert PASSWORD not in json.dumps(result)


def test_platform_journey_refuses_a_url_that_is_not_http(module_run):
    result = module_run("shopstream.swarm.platform_journey", {"url": "ftp://shop", "password": PASSWORD})
    assert result["failed"] and "give url as http(s)://host[:port]" in result["msg"], result
