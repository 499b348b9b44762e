"""playbooks/verify.yml is the platform's proof: it must fail, naming what broke, when the platform breaks.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. The test breaks the network matrix for a moment (the SPA joins `data`), and always restores it
and waits for the service to converge again.
"""

import base64
import json
import time
from pathlib import Path

import pytest
import yaml
from runner import docker, playbook

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "inventories" / "local"
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


def guess(path, count, body=None, headers=None):
    """``count`` requests with wrong credentials through Traefik; their (status, text) until the first 429."""
    import http.client

    answers = []
    for n in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
        try:
            data = json.dumps(dict(body, username=f"{body['username']}{n}")) if body else None
            conn.request("POST" if body else "GET", path, body=data, headers=headers or {})
            resp = conn.getresponse()
            answers.append((resp.status, resp.read().decode(errors="replace")))
        finally:
            conn.close()
        if traefik_429(answers[-1]):
            break
    return answers


def test_traefik_stops_password_guessing_at_the_dashboard_and_the_login_route(deployed):
    """Traefik's own 429 (text, not the gateway's JSON) past the per-address limits of the stack role."""
    limits = yaml.safe_load((ROOT / "roles/stack/defaults/main.yml").read_text())["stack_rate_limits"]
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:not-the-password").decode()}
    # Once the dashboard answers (Traefik reads its routers from the swarm every few seconds):
    # at most `burst` at once, plus what the bucket refills (average/60 a second) meanwhile.
    deadline = time.monotonic() + 60
    while (first := guess("/dashboard/", 1, headers=wrong)[0])[0] != 401 and time.monotonic() < deadline:
        time.sleep(1)
    assert first[0] == 401, first
    dashboard = guess("/dashboard/", 2 * limits["dashboard"]["burst"], headers=wrong)
    assert traefik_429(dashboard[-1]) and {status for status, _ in dashboard[:-1]} <= {401}, dashboard[-3:]
    assert len(dashboard) <= limits["dashboard"]["burst"] + 5
    # Distinct unknown names: no account is locked; the gateway (10 a minute) answers 401 or its
    # JSON 429 until Traefik's limit answers.
    body = {"username": "guess-", "password": "x"}
    login = guess(
        "/api/auth/login", 2 * limits["login"]["burst"], body=body, headers={"Content-Type": "application/json"}
    )
    assert traefik_429(login[-1]) and len(login) <= limits["login"]["burst"] + 5, login[-3:]
    assert {status for status, _ in login[:-1]} <= {401, 429} and login[0][0] in (401, 429)


def traefik_429(answer):
    status, text = answer
    return status == 429 and text.strip() == "Too Many Requests"


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
