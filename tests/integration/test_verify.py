"""playbooks/verify.yml is the platform's proof: it must fail, naming what broke, when the platform breaks.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. The test breaks the network matrix for a moment (the SPA joins `data`), and always restores it
and waits for the service to converge again.
"""

import base64
import http.client
import json
import re
import ssl
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml
from runner import LOCAL, docker, local_vault, playbook

from ansible_collections.shopstream.swarm.plugins.module_utils._local_ca import issue_ca

ROOT = Path(__file__).resolve().parents[2]
VERIFY = ("playbooks/verify.yml", "-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass"))
FRONTEND = "shopstream-app_frontend"


def edge(host="127.0.0.1"):
    """An HTTPS connection to Traefik that trusts only the local CA of the vault (vault_init's)."""
    context = ssl.create_default_context(cadata=local_vault()["shopstream_tls_ca_certificate"])
    return http.client.HTTPSConnection(host, 443, timeout=10, context=context)


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
    """The SPA on the data overlay, with a writable root filesystem: verify names the network, the
    probe that reached MariaDB, and the hardening lost, read from the running containers."""
    spec = converged(FRONTEND)
    before, rollout = networks_of(spec), spec["Spec"]["UpdateConfig"]
    assert "data" not in before, f"{FRONTEND} is already on data: the platform is not as deployed ({before})"
    # Every replica at once, watched for 2 s: this test is about verify, not the rollout (which
    # takes minutes at the platform's one task at a time, then is watched for stack_update_monitor).
    fast = ("--update-parallelism", "0", "--update-monitor", "2s")
    try:
        update = docker("service", "update", "--quiet", *fast, "--network-add", "data", "--read-only=false", FRONTEND)
        assert update.returncode == 0, update.stderr
        assert "data" in networks_of(converged(FRONTEND))

        run = playbook(*VERIFY)

        assert run.rc != 0, run.out[-3000:]
        # The spec check and a probe from inside a running SPA container, both named in the report.
        assert "frontend joins data, which the matrix does not allow" in run.out, run.out[-3000:]
        assert "frontend reached mariadb (" in run.out, run.out[-3000:]
        assert "which the matrix forbids" in run.out
        assert "Not hardened: frontend has a writable root filesystem" in run.out, run.out[-3000:]
        assert "Verify failed" in run.out
        # Read-only, even when it fails.
        assert run.changed() == 0, run.recap
    finally:
        docker("service", "update", "--quiet", *fast, "--network-rm", "data", "--read-only", FRONTEND)
        # The platform's rollout back (a change of the update config alone replaces no task).
        docker("service", "update", "--quiet", "--update-parallelism", str(rollout["Parallelism"]),
               "--update-monitor", f"{rollout['Monitor']}ns", FRONTEND)  # fmt: skip
        spec = converged(FRONTEND)
        assert networks_of(spec) == before
        assert spec["Spec"]["TaskTemplate"]["ContainerSpec"].get("ReadOnly") is True
        assert spec["Spec"]["UpdateConfig"] == rollout


def test_verify_passes_on_the_converged_platform_and_changes_nothing(deployed):
    """The proof itself: every check passes on the platform as deployed, with changed=0."""
    run = playbook(*VERIFY)
    assert run.rc == 0, run.out[-4000:]
    assert run.changed() == 0, run.recap
    assert "ShopStream proven:" in run.out
    for proven in ("probes from inside containers", "every Prometheus target up", "its notification received"):
        assert proven in run.out


def test_verify_names_a_vault_value_found_in_an_environment_never_the_value(deployed):
    """A vault variable whose value is in the gateway's environment (here a stand-in: a setting's
    text, as a password pasted into an env value would be): verify fails naming the variable, the
    service spec and the container, and never prints the value."""
    value = "REDIS_PASSWORD_FILE=/run/secrets/redis_password"
    run = playbook(*VERIFY, "-e", json.dumps({"vault_shopstream_pasted": value}))
    assert run.rc != 0, run.out[-3000:]
    said = " ".join(run.out.split())
    assert "a vault value in the environment of shopstream-app_gateway (service spec): vault_shopstream_pasted" in said
    assert re.search(r"a vault value in the environment of gateway \(container [0-9a-f]{12} on localhost\): "
                     r"vault_shopstream_pasted", said), said[-3000:]  # fmt: skip
    assert value not in run.out


def test_verify_of_an_inventory_without_stacks_proves_the_swarm_alone(deployed):
    """An inventory that deploys no stack (stack_enabled: false) gets the swarm's proof, not a stack's misses."""
    run = playbook(*VERIFY, "-e", "stack_enabled=false")
    assert run.rc == 0, run.out[-4000:]
    assert "No stack is deployed by this inventory (stack_enabled: false)." in " ".join(run.out.split())


def test_verify_fails_naming_an_inventory_host_it_cannot_reach(deployed, tmp_path):
    """A host the proof could not read is no proof: the run fails, naming it (here: nothing listens on its port)."""
    extra = tmp_path / "gone.yml"
    gone = {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh", "ansible_user": "nobody"}
    extra.write_text(json.dumps({"swarm": {"children": {"swarm_workers": {"hosts": {"gone": gone}}}}}))
    run = playbook(*VERIFY, "-i", extra, "-e", "stack_enabled=false")
    assert run.rc != 0
    assert run.recap["gone"]["unreachable"] == 1, run.recap
    assert "Not read (unreachable, or its read failed; see above): gone." in " ".join(run.out.split()), run.out[-3000:]
    assert "ShopStream proven" not in run.out
    assert run.changed() == 0, run.recap


def test_the_edge_serves_https_with_the_local_ca_and_redirects_http(deployed):
    """TLS by default: the certificate is the vault's local CA's for localhost and 127.0.0.1, plain HTTP is
    redirected, the security headers (HSTS too) come on HTTPS, and a client without the CA is refused."""
    for host in ("localhost", "127.0.0.1"):
        conn = edge(host)
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        conn.close()
        assert resp.status == 200 and "<html" in body, (host, resp.status)
        assert resp.getheader("Strict-Transport-Security", "").startswith("max-age="), resp.getheaders()
        assert resp.getheader("X-Frame-Options") == "DENY"
        assert "default-src" in resp.getheader("Content-Security-Policy")

    plain = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
    plain.request("GET", "/api/products?x=1")
    resp = plain.getresponse()
    resp.read()
    plain.close()
    assert resp.status in (301, 308) and resp.getheader("Location") == "https://127.0.0.1/api/products?x=1"

    stranger = http.client.HTTPSConnection("127.0.0.1", 443, timeout=10, context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        stranger.request("GET", "/")
    stranger.close()


def test_the_journey_refuses_an_edge_whose_certificate_is_not_of_the_ca_it_was_given(deployed, module_run):
    other_ca, _other_key = issue_ca(days=1)
    args = {"url": "https://127.0.0.1:443", "password": PASSWORD, "ca_certificate": other_ca, "pages": ["/"]}
    result = module_run("shopstream.swarm.platform_journey", args)
    assert result["failed"] and result["failed_step"] == "pages", result
    assert "CERTIFICATE_VERIFY_FAILED" in result["msg"], result["msg"]

    args["ca_certificate"] = local_vault()["shopstream_tls_ca_certificate"]
    result = module_run("shopstream.swarm.platform_journey", args, True)
    assert not result.get("failed") and result["pages"][0]["status"] == 200, result
    assert result["pages"][0]["headers"]["x-content-type-options"] == "nosniff"


def test_the_kit_registry_takes_no_anonymous_client_and_services_run_digests(deployed, tmp_path):
    """The registry listens on 127.0.0.1 only (this inventory's nodes reach it there), asks every
    client for the vault's login, and the platform's services run image@digest."""
    ports = docker("port", "shopstream-registry").stdout.split()
    assert ports and all(p.startswith("127.0.0.1:") for p in ports if ":" in p), ports

    conn = http.client.HTTPConnection("127.0.0.1", 5000, timeout=10)
    for method, path in (("GET", "/v2/_catalog"), ("DELETE", "/v2/shopstream/app/manifests/sha256:" + "0" * 64)):
        conn.request(method, path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401, (method, path, resp.status)
    conn.close()

    # A client without the login (an empty docker config) can neither pull nor push.
    anonymous = {"DOCKER_CONFIG": str(tmp_path)}
    image = docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", FRONTEND).stdout
    image = image.strip()
    assert "@sha256:" in image and image.startswith("127.0.0.1:5000/"), image
    target = image.split("@")[0].rsplit(":", 1)[0] + ":anonymous"
    assert docker("tag", image, target).returncode == 0
    try:
        push = docker("push", target, env=anonymous)
        assert push.returncode != 0 and refused(push), push.stderr
        pull = docker("pull", image.split("@")[0], env=anonymous)  # a tag: the engine asks the registry
        assert pull.returncode != 0 and refused(pull), pull.stderr
    finally:
        docker("rmi", target)


def registry_digest(ref):
    """What the kit's registry answers for name:tag (with the vault's login)."""
    name, tag = ref.split("/", 1)[1].rsplit(":", 1)
    login = base64.b64encode(f"shopstream:{local_vault()['vault_shopstream_registry_password']}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", 5000, timeout=10)
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    conn.request("HEAD", f"/v2/{name}/manifests/{tag}", headers={"Authorization": f"Basic {login}", "Accept": accept})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200, (ref, resp.status)
    return resp.getheader("Docker-Content-Digest")


def test_a_tag_pushed_over_never_runs_and_the_next_images_run_puts_it_back(deployed):
    """Services run image@digest: a rescheduled task keeps the pushed image; the images role trusts the
    digest its engine recorded at push time, not the registry, and pushes the tag back."""
    image = docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", FRONTEND).stdout
    tag, digest = image.strip().split("@")
    ids = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.split()
    intruder = docker("inspect", "--format", "{{.Image}}", "shopstream-registry").stdout.split()  # any other image
    assert docker("tag", intruder[0], tag).returncode == 0
    try:
        push = docker("push", tag)
        assert push.returncode == 0, push.stderr
        assert registry_digest(tag) != digest, "the tag was not pushed over"

        update = docker("service", "update", "--force", "--quiet", FRONTEND)
        assert update.returncode == 0, update.stderr
        converged(FRONTEND)
        running = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={FRONTEND}").stdout.split()
        assert running and set(docker("inspect", "--format", "{{.Image}}", *running).stdout.split()) == set(ids)

        run = playbook(
            "playbooks/images.yml", "-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass")
        )
        assert run.rc == 0, run.out[-3000:]
        assert run.changed() >= 1 and registry_digest(tag) == digest, run.out[-3000:]
    finally:
        docker("tag", ids[0], tag)


def test_the_images_step_refuses_an_empty_registry_password_before_anything_changes(deployed):
    registry = ("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", "shopstream-registry")
    before = docker(*registry).stdout
    run = playbook(
        "playbooks/images.yml", "-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass"),
        "-e", "images_registry_password=",
    )  # fmt: skip
    flat = " ".join(run.out.split())
    assert run.rc != 0, flat[-2000:]
    assert "images_registry_password is empty: the kit's registry takes no anonymous client" in flat, flat[-2000:]
    assert "vault_shopstream_registry_password" in flat and run.changed() == 0
    assert docker(*registry).stdout == before


def refused(run):
    return any(text in run.stdout + run.stderr for text in ("no basic auth credentials", "unauthorized"))


def guess(path, count, body=None, headers=None):
    """``count`` requests with wrong credentials through Traefik; their (status, text) until the first 429."""
    answers = []
    for n in range(count):
        conn = edge()
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


# What the dashboard's pages fetch, under Traefik's own base path (stack_dashboard_path).
DASHBOARD_API = [
    "overview", "entrypoints", "version", "http/routers", "http/services", "http/middlewares",
    "tcp/routers", "tcp/services", "tcp/middlewares", "udp/routers", "udp/services",
]  # fmt: skip


def get(path, headers=None):
    conn = edge()
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.getheader("WWW-Authenticate", ""), resp.read()
    finally:
        conn.close()


def test_every_page_of_the_dashboard_loads_under_its_own_path_and_the_shop_keeps_api(deployed):
    """The dashboard and every API page it reads answer under /traefik/ with the vault's login; the
    shop's /api/... paths, Traefik's API paths at the root, go to the gateway, not to Traefik."""
    login = f"admin:{local_vault()['vault_shopstream_traefik_dashboard_password']}"
    auth = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
    deadline = time.monotonic() + 60  # Traefik reads its routers from the swarm every few seconds
    while (page := get("/traefik/dashboard/", auth))[0] != 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert page[0] == 200 and page[1].startswith("text/html"), page[:3]
    assert b'"\\/traefik\\/api\\/"' in page[3], "the page reads the API under the same path"
    script = re.search(rb'src="\./(assets/[^"]+\.js)"', page[3])
    assert script and get(f"/traefik/dashboard/{script.group(1).decode()}", auth)[0] == 200, "its script loads"
    for path in DASHBOARD_API:
        status, kind, _challenge, body = get(f"/traefik/api/{path}", auth)
        assert status == 200 and kind.startswith("application/json"), (path, status, body[:200])
        json.loads(body)
    status, _kind, challenge, _body = get("/traefik/api/overview")
    assert status == 401 and challenge.startswith("Basic"), "no page without the login"
    for path in ("/api/tcp/routers", "/api/http/routers"):
        status, _kind, challenge, body = get(path, auth)
        assert status in (401, 404) and not challenge.startswith("Basic"), (path, status, challenge, body[:200])
        assert b"routers" not in body, "the gateway's answer, not Traefik's"


def test_prometheus_and_alertmanager_answer_under_their_own_paths_behind_their_login(deployed):
    """Operators reach both UIs and APIs through Traefik (stack_prometheus_path, stack_alertmanager_path),
    each asking for its own login; the UI knows the path it is served under."""
    login = f"prometheus:{local_vault()['vault_shopstream_monitoring_password']}"
    auth = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
    for prefix, api in (("/prometheus", "/api/v1/status/buildinfo"), ("/alertmanager", "/api/v2/status")):
        deadline = time.monotonic() + 60  # Traefik reads its routers from the swarm every few seconds
        while (answer := get(prefix + api, auth))[0] != 200 and time.monotonic() < deadline:
            time.sleep(1)
        status, kind, _challenge, body = answer
        assert status == 200 and kind.startswith("application/json"), (prefix, status, body[:300])
        json.loads(body)
        status, _kind, challenge, _body = get(prefix + api)
        assert status == 401 and challenge.startswith("Basic"), (prefix, "no answer without the login")
        status, kind, _challenge, body = get(prefix + "/", auth)
        assert status in (200, 302) and (status == 302 or kind.startswith("text/html")), (prefix, status, body[:300])
    up = json.loads(get("/prometheus/api/v1/query?query=up", auth)[3])
    assert up["status"] == "success" and up["data"]["result"], up
    # Prometheus sends / to its UI's page (/graph, or Debian's /classic/graph) under the path Traefik
    # serves it at; that page's scripts and API calls carry the path too.
    conn = edge()
    try:
        conn.request("GET", "/prometheus/", headers=auth)
        answer = conn.getresponse()
        location = urllib.parse.urlsplit(answer.getheader("Location", "")).path
    finally:
        conn.close()
    assert answer.status == 302 and location.startswith("/prometheus/"), (answer.status, location)
    status, kind, _challenge, body = get(location, auth)
    assert status == 200 and kind.startswith("text/html") and b'"/prometheus/' in body.replace(b"\\/", b"/"), body[:500]


def test_traefik_stops_password_guessing_at_the_dashboard_and_the_login_route(deployed):
    """Traefik's own 429 (text, not the gateway's JSON) past the per-address limits of the stack role."""
    limits = yaml.safe_load((ROOT / "roles/stack/defaults/main.yml").read_text())["stack_rate_limits"]
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:not-the-password").decode()}
    # Once the dashboard answers (Traefik reads its routers from the swarm every few seconds):
    # at most `burst` at once, plus what the bucket refills (average/60 a second) meanwhile.
    deadline = time.monotonic() + 60
    while (first := guess("/traefik/dashboard/", 1, headers=wrong)[0])[0] != 401 and time.monotonic() < deadline:
        time.sleep(1)
    assert first[0] == 401, first
    started = time.monotonic()
    dashboard = guess("/traefik/dashboard/", 3 * limits["dashboard"]["burst"], headers=wrong)
    assert traefik_429(dashboard[-1]) and {status for status, _text in dashboard[:-1]} <= {401}, dashboard[-3:]
    assert len(dashboard) <= allowed(limits["dashboard"], time.monotonic() - started), len(dashboard)
    # Distinct unknown names: no account is locked; the gateway (10 a minute) answers 401 or its
    # JSON 429 until Traefik's limit answers.
    body = {"username": "guess-", "password": "x"}
    started = time.monotonic()
    login = guess(
        "/api/auth/login", 3 * limits["login"]["burst"], body=body, headers={"Content-Type": "application/json"}
    )
    assert traefik_429(login[-1]) and len(login) <= allowed(limits["login"], time.monotonic() - started), login[-3:]
    assert {status for status, _text in login[:-1]} <= {401, 429} and login[0][0] in (401, 429)


def allowed(limit, seconds):
    """Requests a limit lets through in `seconds`: its burst, what the bucket refilled meanwhile
    (average a minute) and a margin for the requests in flight."""
    return limit["burst"] + int(seconds * limit["average"] / 60) + 5


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
