"""The whole platform on the Molecule `cluster` scenario: zero downtime, rollback through the role, data.

Runs first in side_effect.yml (test_lifecycle removes nodes afterwards), on the converged five-node
swarm with Traefik on manager1 (port 80, host mode), the data services pinned to manager2 and the
stateless services on the workers.

- Zero downtime: steady HTTP load from this host through Traefik (the SPA, and the API through the
  gateway with a token from login) during a forced rolling update of every stateless service,
  during a rotation of the JWT signing key (a secret whose consumers sign and verify tokens) and
  during a config rotation. Each scenario prints its requests, failures and duration, and fails
  above 0 failures.
- Rollback: stack.yml with a broken image for one service fails naming it, and swarm rolled it back.
- Data: rows written to MariaDB survive a forced update and a rollback; a backup restores them
  after a loss.
- Faults under the load, each a row of the table `fault | requests | failed | recovered in s | orders
  lost`: each data service restarted; and last (they move tasks and leadership), an engine upgrade
  of three nodes (one drained node at a time, the others left alone), a worker lost (site.yml runs
  without it), a manager cut off, the leader's engine killed, the data node's engine restarted.

stack.yml runs here on its own, without the earlier roles' facts: the extra vars that those roles
would give it (images, versioned secret and config names, endpoint and publish modes) are read from
the running services (live_stack_vars), so that a run with them is the platform as it is: changed=0.
"""

import hashlib
import http.client
import itertools
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from cluster_nodes import INVENTORY, needs_cluster, node_exec, wait_for
from runner import docker, playbook

pytestmark = needs_cluster

EDGE = os.environ.get("SHOPSTREAM_EDGE_ADDRESS", "192.168.241.11")
STACKS = ("shopstream-data", "shopstream-app", "shopstream-edge", "shopstream-monitoring")
STATELESS = ("frontend", "gateway", "auth", "product", "order", "notification")
MARIADB = "shopstream-data_mariadb"
MIN_REQUESTS = 5000
# Once the load has made MIN_REQUESTS requests, each SPA client waits SPA_PAUSE_AFTER seconds between
# requests instead of SPA_PAUSE: about 30 requests a second in all, one every ~30 ms, still catches a
# failure that lasts a blink, while a drill of minutes leaves the CPU (2 cores in CI, shared with the
# other integration tests) to what it drills rather than to TLS handshakes.
SPA_PAUSE, SPA_PAUSE_AFTER = 0.02, 0.2
# The gateway allows 100 API requests a minute per user (RATE_LIMIT_REQUESTS, fixed window) and 10
# logins a minute per client address: the API client stays below both, so that a 429 is a failure.
API_INTERVAL = 0.75
# Before a load: the SPA served this many times in a row through the edge, this many s apart.
STEADY_STREAK, STEADY_SPACING = 20, 0.1
ORDER_EVERY = 4
# stack.yml runs here deploy only the stacks these tests change: other stacks' templates may hold
# work in progress of the same tree that this cluster was not converged with.
STACK_RUN = ["data", "app"]
ROLE_VARS = Path(__file__).resolve().parents[2] / "roles/stack/vars/main.yml"
# Extra vars for every playbook run here (a JSON/YAML file): pins settings whose defaults changed in the
# tree since the cluster converged, so that a rotation re-renders only what the test changes.
REGISTRY_PUSH = "127.0.0.1:5000"  # the kit's registry on manager1, as manager1 pushes to it
REGISTRY_PULL = "192.168.241.11:5000"  # the same registry, as every node pulls from it


# --- the swarm, through manager1 -------------------------------------------------------------------


def swarm(*args, check=True):
    return node_exec("manager1", "docker", *args, check=check)


def node_state(node):
    """The node's own swarm state (active, locked, ...), from its engine."""
    return json.loads(node_exec(node, "docker", "info", "--format", "{{json .Swarm}}"))["LocalNodeState"]


def inspect(kind, *names):
    """Objects of a kind (service, node, secret, config, task) as the engine's API returns them."""
    if not names:
        return []
    return json.loads(swarm("inspect", "--type", kind, *names) if kind == "task" else swarm(kind, "inspect", *names))


def platform_services():
    return sorted(n for n in swarm("service", "ls", "--format", "{{.Name}}").split() if n.startswith(STACKS))


def replicas(replicated_only=False):
    """{service: (running, desired)} of every platform service (global ones too, unless replicated_only)."""
    out = swarm("service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}")
    counts = {}
    for line in out.splitlines():
        name, mode, rest = line.split(" ", 2)
        if name.startswith(STACKS) and not (replicated_only and mode == "global"):
            running, _slash, desired = rest.split()[0].partition("/")
            counts[name] = (int(running), int(desired))
    return counts


def running_tasks(service):
    out = swarm("service", "ps", service, "--filter", "desired-state=running", "--no-trunc",
                "--format", "{{.ID}} {{.Node}} {{.CurrentState}}")  # fmt: skip
    return [line.split()[:3] for line in out.splitlines() if line.split()[2:3] == ["Running"]]


def converged(replicated_only=False):
    """Every platform service at its replicas; with replicated_only, global services left out (a task
    of theirs on a node that is down still counts as running)."""
    counts = replicas(replicated_only)
    return len(counts) >= 10 and all(running == desired for running, desired in counts.values())


def wait_converged(timeout=420):
    wait_for("every platform service runs all its replicas", converged, timeout=timeout,
             explain=lambda: swarm("service", "ls", check=False))  # fmt: skip


def update_state(service):
    return (inspect("service", service)[0].get("UpdateStatus") or {}).get("State")


def image_of(service):
    """The image the service runs: name:tag@digest, as the images role pins it."""
    return inspect("service", service)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]


def live_stack_vars():
    """The stack role's inputs as the running platform has them (what the earlier roles' facts hold)."""
    services = inspect("service", *platform_services())
    by_name = {s["Spec"]["Name"]: s["Spec"] for s in services}

    def image(service):
        return by_name[service]["TaskTemplate"]["ContainerSpec"]["Image"]

    images = {"app": image("shopstream-app_gateway")}
    for name, spec in by_name.items():
        component = (spec.get("Labels") or {}).get("com.shopstream.component") or name.split("_", 1)[1]
        if component not in STATELESS[1:]:  # gateway, auth, product, order, notification run the `app` image
            images[component] = image(name)
    # A component the role knows but this cluster does not run (added to the tree since it converged):
    # named so that the check passes, never deployed, since STACK_RUN leaves out the stacks that use it.
    for component in re.findall(
        r"'([a-z-]+)'", (ROLE_VARS.read_text().split("__stack_components:")[1]).split("\n__")[0]
    ):
        images.setdefault(component, f"not-deployed/{component}:none")
    found = {}
    for kind, ref_key, name_key in (("secret", "Secrets", "SecretName"), ("config", "Configs", "ConfigName")):
        ids = swarm(kind, "ls", "-q").split()
        logical = {
            o["Spec"]["Name"]: (o["Spec"].get("Labels") or {}).get("com.shopstream.object") for o in inspect(kind, *ids)
        }
        used = {}
        for spec in by_name.values():
            for ref in spec["TaskTemplate"]["ContainerSpec"].get(ref_key) or []:
                key = (logical.get(ref[name_key]) or "").removeprefix("shopstream_")
                if key:
                    used[key] = {"name": ref[name_key], "target": ref["File"]["Name"]}
        found[kind] = used
    traefik = by_name["shopstream-edge_traefik"]
    return {
        "stack_images": images,
        "stack_secrets": {key: ref["name"] for key, ref in found["secret"].items()},
        "stack_configs": found["config"],
        # What preflight resolved for these kernels (no IPVS: dnsrr endpoints, host-mode ports).
        "shopstream_preflight": {
            "resolved": {
                "shopstream_endpoint_mode": by_name["shopstream-app_gateway"]["EndpointSpec"]["Mode"],
                "shopstream_publish_mode": traefik["EndpointSpec"]["Ports"][0]["PublishMode"],
            }
        },
        "stack_stacks": STACK_RUN,
    }


def stack_playbook(extra_vars, *args):
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="stack-vars-", delete=False) as handle:
        json.dump(extra_vars, handle)
    try:
        return playbook("playbooks/stack.yml", "-i", INVENTORY, "-e", f"@{handle.name}", *args)
    finally:
        os.unlink(handle.name)


def vault_value(name):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", INVENTORY, "--host", "manager1"],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(Path(__file__).resolve().parents[2] / "ansible.cfg")),
    )  # fmt: skip
    return json.loads(out.stdout)[name]


_TLS = []


def edge():
    """HTTPS to Traefik on the edge manager, trusting only the vault's local CA (vault_init made it for EDGE)."""
    if not _TLS:
        _TLS.append(ssl.create_default_context(cadata=vault_value("shopstream_tls_ca_certificate")))
    return http.client.HTTPSConnection(EDGE, 443, timeout=10, context=_TLS[0])


# --- the load ----------------------------------------------------------------------------------------


class Load:
    """Steady HTTP load through Traefik from this host, in threads, until stopped.

    - SPA clients: GET / (the frontend), half on one keep-alive connection each, half on a new
      connection per request.
    - An API client: GET /api/products (gateway -> product -> MariaDB) with a bearer token from
      POST /api/auth/login, paced below the gateway's rate limit; every ORDER_EVERY-th request is
      POST /api/orders instead (gateway -> order -> product, MariaDB and the outbox RabbitMQ takes
      events from), for a product the load creates unlisted. A 401 is a failure: a token the
      platform issued stays valid through updates and rotations (the gateway also accepts the
      JWT key before the last rotation).

    The SPA clients slow down once MIN_REQUESTS requests were made (SPA_PAUSE_AFTER).
    A failure is any status but 2xx, or a connection error or timeout.
    """

    def __init__(self, password, keepalive=3, fresh=3):
        self.password = password
        self.keepalive, self.fresh = keepalive, fresh
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.api_requests = 0
        self.logins = 0
        self.failures = []
        self.threads = []
        self.token = None
        self.product_id = None
        self.orders = 0
        self.order_ids = []

    def _count(self, failure=None, api=False):
        with self.lock:
            self.requests += 1
            self.api_requests += api
            if failure:
                self.failures.append((round(time.monotonic() - self.started, 1), failure))

    @staticmethod
    def _conn():
        return edge()

    def _get(self, conn, path, headers=None):
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body

    def _post(self, conn, path, data):
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn.request("POST", path, body=json.dumps(data), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def _spa(self, keepalive):
        conn = self._conn() if keepalive else None
        while not self.stop.is_set():
            if not keepalive:
                conn = self._conn()
            try:
                status, body = self._get(conn, "/", {} if keepalive else {"Connection": "close"})
                ok = 200 <= status < 300 and b"<html" in body.lower()
                self._count(None if ok else f"GET / -> {status} {body[:80]!r}")
            except (OSError, http.client.HTTPException) as exc:
                self._count(f"GET / ({'keep-alive' if keepalive else 'new connection'}) -> {type(exc).__name__}: {exc}")
                conn.close()
                conn = self._conn()
            if not keepalive:
                conn.close()
            time.sleep(SPA_PAUSE if self.requests < MIN_REQUESTS else SPA_PAUSE_AFTER)
        conn.close()

    def login(self, conn):
        body = json.dumps({"username": "demo", "password": self.password})
        conn.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        self.logins += 1
        if resp.status != 200:
            return f"POST /api/auth/login -> {resp.status} {data[:80]!r}"
        self.token = json.loads(data)["token"]
        return None

    def _api(self):
        conn = self._conn()
        for count in itertools.count(1):
            if self.stop.is_set():
                break
            started = time.monotonic()
            failure, order = None, count % ORDER_EVERY == 0
            what = "POST /api/orders" if order else "GET /api/products"
            try:
                if order:
                    status, body = self._post(conn, "/api/orders", {"items": [{"product_id": self.product_id}]})
                    if status == 201:
                        self.orders += 1
                        self.order_ids.append(json.loads(body)["id"])
                else:
                    status, body = self._get(conn, "/api/products", {"Authorization": f"Bearer {self.token}"})
                if not 200 <= status < 300:
                    failure = f"{what} -> {status} {body[:80]!r}"
            except (OSError, http.client.HTTPException) as exc:
                failure = f"{what} -> {type(exc).__name__}: {exc}"
                conn.close()
                conn = self._conn()
            self._count(failure, api=True)
            self.stop.wait(max(0.0, API_INTERVAL - (time.monotonic() - started)))
        conn.close()

    def __enter__(self):
        conn = self._conn()
        try:
            failure = self.login(conn)
            assert failure is None, f"the demo user cannot log in before the load starts: {failure}"
            product = {"name": "load test", "price_cents": 100, "stock": 1000, "listed": False}
            status, body = self._post(conn, "/api/products", product)
            assert status == 201, f"the load cannot create its product: {status} {body[:200]!r}"
            self.product_id = json.loads(body)["id"]
        finally:
            conn.close()
        self.started = time.monotonic()
        targets = [(self._spa, (True,))] * self.keepalive + [(self._spa, (False,))] * self.fresh + [(self._api, ())]
        self.threads = [threading.Thread(target=fn, args=args, daemon=True) for fn, args in targets]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        self.seconds = time.monotonic() - self.started

    def until(self, minimum, timeout=300):
        """Keep the load running until it made at least minimum requests."""
        deadline = time.monotonic() + timeout
        while self.requests < minimum and time.monotonic() < deadline:
            time.sleep(0.5)


def edge_steady(streak=STEADY_STREAK, timeout=180):
    """Wait until the edge served the SPA ``streak`` times in a row (STEADY_SPACING s apart); return the
    seconds it took. A fault's load starts on a platform that serves, so that what fails is this
    fault's and not the tail of the one before (a forced new cluster leaves the survivor's overlay
    relearning its peers for a while: Traefik's health checks may drop the frontend's tasks again
    after recover.yml's drill ended, as in a CI of 2026-12-06)."""
    began, ok, last = time.monotonic(), 0, "nothing yet"
    conn = edge()
    try:
        while ok < streak:
            if time.monotonic() - began > timeout:
                pytest.fail(f"the edge did not serve the SPA {streak} times in a row within {timeout} s: {last}")
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                ok, last = (ok + 1, "") if resp.status == 200 and b"<html" in body.lower() else (0, f"{resp.status}")
            except (OSError, http.client.HTTPException) as exc:
                ok, last = 0, f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = edge()
            time.sleep(STEADY_SPACING)
    finally:
        conn.close()
    return time.monotonic() - began


def run_under_load(what, action, capsys, tolerated=None):
    """Run action() under the load (at least MIN_REQUESTS requests), print the numbers; fail on any
    failed request, or with ``tolerated`` (a predicate) on any failure it does not accept, and return
    the load (its failures as ``(seconds since the load began, what)``) and when the action began."""
    wait_converged()
    steady = edge_steady()
    with Load(vault_value("vault_shopstream_demo_password")) as load:
        time.sleep(3)  # steady state first
        action_start = time.monotonic()
        action()
        action_seconds = time.monotonic() - action_start
        time.sleep(3)
        load.until(MIN_REQUESTS)
    report = (
        f"{what}: {load.requests} requests ({load.api_requests} API, {load.orders} of them orders, "
        f"{load.logins} logins), "
        f"{len(load.failures)} failed, {load.seconds:.1f} s of load ({action_seconds:.1f} s of {what})"
    )
    if steady > STEADY_STREAK * STEADY_SPACING * 3:
        report += f"; the edge served steadily {steady:.1f} s after the platform converged, before the load"
    with capsys.disabled():
        print(f"\n  {report}")
        for at, failure in load.failures[:15]:
            print(f"    +{at}s {failure}")
    assert load.requests >= MIN_REQUESTS, report
    refused = [(at, f) for at, f in load.failures if not (tolerated and tolerated(f))]
    assert refused == [], report + "\n" + "\n".join(f"+{at}s {f}" for at, f in refused[:30])
    return load, action_start - load.started


# --- zero downtime -----------------------------------------------------------------------------------


def rolled_out(service, force):
    """Every replica runs the spec of the forced update `force`, and no task of the old spec still runs."""
    spec = inspect("service", service)[0]["Spec"]
    tasks = inspect("task", *swarm("service", "ps", "-q", "--no-trunc", service).split())
    current = [t for t in tasks if t["DesiredState"] == "running"]
    old_running = [t for t in tasks if t["DesiredState"] != "running" and t["Status"]["State"] == "running"]
    return (
        len(current) == spec["Mode"]["Replicated"]["Replicas"]
        and all(t["Status"]["State"] == "running" and t["Spec"].get("ForceUpdate") == force for t in current)
        and not old_running
    )


def test_a_forced_rolling_update_of_every_stateless_service_drops_no_request(capsys):
    def update_all():
        # All six at once, each one task at a time as its update_config says: the worst case for
        # Traefik, whose every backend changes under it.
        start, forces = time.monotonic(), {}
        for name in STATELESS:
            service = f"shopstream-app_{name}"
            forces[service] = inspect("service", service)[0]["Spec"]["TaskTemplate"].get("ForceUpdate", 0) + 1
            swarm("service", "update", "--force", "--detach", service)
        for service, force in forces.items():
            # Until every task was replaced (not the update monitor's further watch).
            wait_for(f"{service} rolled out", lambda s=service, f=force: rolled_out(s, f), timeout=300)
            with capsys.disabled():
                print(f"\n    {service} rolled out after {time.monotonic() - start:.1f} s", end="")

    run_under_load("forced rolling update of 6 services", update_all, capsys)


def secret_versions(logical):
    return sorted(swarm("secret", "ls", "--filter", f"label=com.shopstream.object={logical}",
                        "--format", "{{.Name}}").split())  # fmt: skip


def secret_names(service):
    return sorted(
        ref["SecretName"] for ref in inspect("service", service)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    )


def exec_in(service, *command, check=True):
    """Run a command in the container of the service's (first) running task, on its node."""
    task, node = running_tasks(service)[0][:2]
    container = node_exec(node, "docker", "ps", "-q", "--filter", f"label=com.docker.swarm.task.id={task}").strip()
    return node_exec(node, "docker", "exec", container, *command, check=check)


def test_a_rotation_of_the_jwt_key_and_the_redis_rabbitmq_and_mariadb_passwords_drops_no_request(capsys):
    """rotate_secrets.yml moves those that accept the previous value too first (Redis, given both
    passwords; RabbitMQ, whose definitions have a user per password; the JWT verifiers product, order,
    notification), then the clients (the gateway, a verifier and Redis's client; order and
    notification, RabbitMQ's clients), then auth, which signs: no token is refused, no connection to
    Redis or RabbitMQ is refused for long enough to fail a request, and the orders placed while
    RabbitMQ restarts wait in order's outbox. MariaDB never restarts: the new application password
    is a user of its own before its clients move, root's password is set in place; auth takes the demo
    user's new password beside the old one. Then Redis, RabbitMQ and auth move onto the new password
    alone and MariaDB drops the replaced password's user: the replaced ones are refused."""
    gateway, auth = "shopstream-app_gateway", "shopstream-app_auth"
    redis, rabbitmq = "shopstream-data_redis", "shopstream-data_rabbitmq"
    mq_clients = {f"shopstream-app_{name}" for name in ("order", "notification")}
    verifiers = {gateway, "shopstream-app_product"} | mq_clients
    rotated = ("jwt_signing_key", "redis_password", "rabbitmq_password", "mariadb_password", "mariadb_root_password",
               "demo_password")  # fmt: skip
    mariadb_task = running_tasks(MARIADB)
    old = {name: secret_versions(f"shopstream_{name}") for name in rotated}
    assert all(len(versions) == 1 for versions in old.values()), old
    old_values = {name: vault_value(f"vault_shopstream_{name}") for name in old}
    runs = []

    def rotate():
        run = playbook("playbooks/rotate_secrets.yml", "-i", INVENTORY, "-e", "rotate=" + ",".join(rotated))
        assert run.rc == 0, run.out[-4000:]
        runs.append(run)

    run_under_load("rotation of the JWT signing key, the Redis, RabbitMQ, MariaDB and demo passwords", rotate, capsys)

    report = " ".join(runs[0].out.split())
    new_values = {name: vault_value(f"vault_shopstream_{name}") for name in rotated}
    for name in rotated:
        new = secret_versions(f"shopstream_{name}")
        assert len(new) == 1 and new != old[name], f"{name}: one new version; the old one is pruned"
        assert new_values[name] != old_values[name]
        line = re.search(rf"{name}: new ([\w-]+), was ([\w-]+); rewired: ([^;]+); pruned: ([\w-]+)", report)
        assert line and line.group(1, 2, 4) == (new[0], old[name][0], old[name][0]), report[-3000:]
    # The JWT verifiers keep the replaced key (the tokens it signed stay valid until they expire);
    # Redis and RabbitMQ were moved again onto the new password alone.
    previous = {name: vault_value(f"vault_shopstream_{name}_previous") for name in rotated}
    wanted = dict(new_values, jwt_signing_key=old_values["jwt_signing_key"])
    assert previous == wanted, "the previous values: the replaced JWT key, the current passwords"
    versions = secret_versions("shopstream_redis_password_previous")
    assert len(versions) == 1 and versions[0] in secret_names(redis), versions
    # The verifiers mount the replaced key's version of jwt_signing_key_previous (the twin of the
    # version auth signed with); the current key's twin is made and kept for the next change.
    twin = {
        v: v.replace("shopstream_jwt_signing_key_", "shopstream_jwt_signing_key_previous_", 1)
        for v in old["jwt_signing_key"] + secret_versions("shopstream_jwt_signing_key")
    }
    assert secret_versions("shopstream_jwt_signing_key_previous") == sorted(twin.values())
    assert all(twin[old["jwt_signing_key"][0]] in secret_names(s) for s in verifiers), twin
    assert all(secret_versions("shopstream_jwt_signing_key")[0] in secret_names(s) for s in verifiers | {auth})
    assert all(secret_versions("shopstream_redis_password")[0] in secret_names(s) for s in (gateway, redis))
    assert all(secret_versions("shopstream_rabbitmq_password")[0] in secret_names(s) for s in mq_clients)
    assert secret_versions("shopstream_rabbitmq_definitions")[0] in secret_names(rabbitmq)
    # No update paused or rolled back; a service the rotation spread (scaled up and back) has none.
    assert {update_state(s) for s in verifiers | {auth, redis, rabbitmq}} <= {"completed", None}
    # The waves of the rotation's move (the first report; the second is the servers' move alone).
    waves = re.search(r"moved in waves: ([^\"]+)\"", report)
    assert waves, report[-3000:]
    wave = {service: i for i, names in enumerate(waves.group(1).split(" | ")) for service in names.split(", ")}
    assert wave[redis] < wave[gateway] and wave[rabbitmq] < min(wave[c] for c in mq_clients), wave
    assert wave[auth] > max(wave[v] for v in verifiers), wave
    # The replaced passwords are refused: RabbitMQ has the new password's user alone, Redis takes
    # the new password only.
    user = "shopstream-" + hashlib.sha256(new_values["rabbitmq_password"].encode()).hexdigest()[:8]
    users = ("rabbitmqctl", "-q", "list_users", "--no-table-headers")
    wait_for("RabbitMQ has the new password's user alone", lambda: exec_in(rabbitmq, *users).split()[::2] == [user],
             timeout=180, explain=lambda: exec_in(rabbitmq, *users, check=False))  # fmt: skip

    def redis_ping(password):
        return exec_in(redis, "redis-cli", "--no-auth-warning", "-a", password, "ping", check=False)

    assert "PONG" in redis_ping(new_values["redis_password"])
    assert "PONG" not in redis_ping(old_values["redis_password"])
    # MariaDB ran on through the rotation: the new application password's user alone, root with
    # the new password only (the old one refused), the network root of earlier releases gone.
    assert running_tasks(MARIADB) == mariadb_task, "MariaDB never restarted"
    db = MariaDB()
    assert db.locate()
    app_user = "shopstream-" + hashlib.sha256(new_values["mariadb_password"].encode()).hexdigest()[:8]
    accounts = db.sql("SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User LIKE 'shopstream%' OR User = 'root'")
    assert sorted(accounts.split()) == ["root@localhost", f"{app_user}@%"], accounts
    assert db.sql("SELECT 1", password=old_values["mariadb_root_password"], check=False) is None
    # auth accepted both demo passwords while it moved (the load's token came from the old one), and
    # the new one alone once retired.
    logins = {}
    for which in ("old", "new"):
        conn = edge()
        values = old_values if which == "old" else new_values
        body = json.dumps({"username": "demo", "password": values["demo_password"]})
        conn.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
        logins[which] = conn.getresponse().status
        conn.close()
    assert logins == {"old": 401, "new": 200}, logins
    # The moves' start-first updates may leave replicas side by side: the rotation spread them.
    assert spread_over_workers(), {worker: app_tasks_on(worker) for worker in WORKERS}
    with capsys.disabled():
        print(f"\n    rotate_secrets.yml took {runs[0].seconds:.1f} s; waves: {waves.group(1)}", end="")


MARIADB_RECOVERY = 120
# Seconds without a failed SPA request after which another one is a second outage (the recover drill).
RECOVER_QUIET = 30
# Product and order answer 503 with Retry-After without their database (the gateway 502/504 while no
# replica of theirs answers), never a 500, never the SPA: the only failures while MariaDB is away.
DATABASE_AWAY = re.compile(r"(GET /api/products|POST /api/orders) -> 50[234] ")
FAULTS = []  # (fault, requests, failed, recovered in s, orders lost): the table each fault test prints


@pytest.mark.parametrize(
    "service, tolerated",
    [
        ("redis", None),  # the gateway counts rate limits in memory meanwhile, its /healthz "degraded"
        ("rabbitmq", None),  # order's outbox keeps the orders' events; order and notification "degraded"
        ("mariadb", DATABASE_AWAY.match),
    ],
)
def test_a_data_service_restarted_under_load(service, tolerated, capsys):
    """Each data service's task replaced (a forced update: stop, then start on its node, its volume
    kept) under the load, which places orders too: Redis and RabbitMQ fail no request; with MariaDB
    only API requests fail, with 502-504, for at most MARIADB_RECOVERY seconds. Every order placed is
    in MariaDB, and order's outbox is empty again (each event reached RabbitMQ)."""
    full = f"shopstream-data_{service}"

    def restart():
        force = inspect("service", full)[0]["Spec"]["TaskTemplate"].get("ForceUpdate", 0) + 1
        swarm("service", "update", "--force", "--detach", full)
        wait_for(f"{full} restarted", lambda: rolled_out(full, force), timeout=300)

    load, began = run_under_load(f"a restart of {service}", restart, capsys, tolerated)
    recovered = max((at - began for at, _failure in load.failures), default=0.0)
    record_fault(f"restart {service}", load, recovered, capsys)
    assert recovered <= MARIADB_RECOVERY, f"requests failed until {recovered:.1f} s after the restart began"


def orders_lost(load):
    """Orders the load placed (201) that MariaDB does not hold; order's outbox emptied (every event
    reached RabbitMQ)."""
    db = MariaDB()
    wait_for("MariaDB answers", db.locate, timeout=120)
    ids = ", ".join(str(int(i)) for i in load.order_ids)
    found = int(db.sql(f"SELECT COUNT(*) FROM shopstream.orders WHERE id IN ({ids})")) if ids else 0  # noqa: S608
    wait_for("order's outbox is published", lambda: db.sql("SELECT COUNT(*) FROM shopstream.order_outbox") == "0",
             timeout=120)  # fmt: skip
    return len(load.order_ids) - found


def record_fault(fault, load, recovered, capsys):
    """Add the fault's row to the table, print the table, and fail when an order placed was lost."""
    lost = orders_lost(load)
    FAULTS.append((fault, load.requests, len(load.failures), round(recovered, 1), lost))
    with capsys.disabled():
        print("\n    fault | requests | failed | recovered in s | orders lost")
        for row in FAULTS:
            print("    " + " | ".join(str(cell) for cell in row))
    assert load.order_ids and lost == 0, f"{lost} of {len(load.order_ids)} orders placed are not in MariaDB"


# The rotated config's setting, in the scenario's inventory: the later runs (stack.yml, site.yml, the
# lifecycle's reruns) render the config as rotated and change nothing; destroy.yml removes the file.
ROTATED_CONFIG = Path(INVENTORY or ".").parent / "group_vars" / "all" / "rotated_config.yml"


def test_a_config_rotation_drops_no_request(capsys):
    marker = f"rotated-{uuid.uuid4().hex[:8]}"
    directives = f'location = /config-marker {{ default_type text/plain; return 200 "{marker}"; }}'

    def rotate():
        ROTATED_CONFIG.write_text(json.dumps({"configs_nginx_extra_directives": directives}) + "\n")
        run = playbook("playbooks/rotate_configs.yml", "-i", INVENTORY)
        assert run.rc == 0, run.out[-4000:]
        assert "services rewired: shopstream-app_frontend" in " ".join(run.out.split()), run.out[-3000:]
        wait_for(f"the SPA answers /config-marker with {marker}", lambda: config_marker() == marker, timeout=60)

    run_under_load("config rotation of nginx", rotate, capsys)
    assert spread_over_workers(), {worker: app_tasks_on(worker) for worker in WORKERS}


def config_marker():
    """What the frontend answers at /config-marker: the marker its config returns, None when the SPA
    answers (no such location); None too while the two replicas disagree."""
    seen = set()
    for _probe in range(6):
        conn = edge()
        conn.request("GET", "/config-marker", headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        conn.close()
        seen.add(body if (resp.getheader("Content-Type") or "").startswith("text/plain") else None)
    return seen.pop() if len(seen) == 1 else "(replicas disagree)"


# --- rollback through the role -----------------------------------------------------------------------


def push_broken_image():
    """An image whose process exits 1 at once, built on manager1 and pushed to the kit's registry."""
    base = image_of("shopstream-app_frontend").split("@")[0]
    node_exec("manager1", "docker", "pull", "--quiet", base)
    local, served = f"{REGISTRY_PUSH}/shopstream/broken:1", f"{REGISTRY_PULL}/shopstream/broken:1"
    build = subprocess.run(
        ["docker", "exec", "-i", "manager1", "docker", "build", "--quiet", "-t", local, "-"],
        input=f'FROM {base}\nHEALTHCHECK NONE\nENTRYPOINT ["/bin/false"]\nCMD []\n',
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    node_exec("manager1", "docker", "push", "--quiet", local)
    return served


def test_an_update_to_a_broken_image_rolls_back_by_itself_and_the_role_names_the_service(capsys):
    wait_converged()
    service = "shopstream-app_frontend"
    live = live_stack_vars()
    good = live["stack_images"]["frontend"]
    broken = push_broken_image()
    start = time.monotonic()

    run = stack_playbook(dict(live, stack_images=dict(live["stack_images"], frontend=broken)))
    failed_after = time.monotonic() - start
    assert run.rc != 0, run.out[-4000:]
    flat = " ".join(run.out.split())
    named = f"The update of service {service} did not complete: rollback_"
    assert named in flat, run.out[-4000:]
    failure = flat[flat.index(named) :][:160]

    wait_for(f"{service} rolled back", lambda: update_state(service) == "rollback_completed", timeout=240,
             explain=lambda: json.dumps(inspect("service", service)[0].get("UpdateStatus")))  # fmt: skip
    assert image_of(service) == good
    wait_converged()
    tasks = inspect("task", *(t[0] for t in running_tasks(service)))
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in tasks} == {good}
    rolled_back_after = time.monotonic() - start

    # Nothing to deploy again; the rolling updates of the tests above may have left a service's
    # replicas on one worker (start-first), which the run spreads (test_a_drained_worker_...).
    again = stack_playbook(live, "-v")
    assert again.rc == 0, again.out[-4000:]
    actions = sorted(set(re.findall(r'"action": "(\w+)"', again.out)))
    assert set(actions) <= {"unchanged", "spread"} and "unchanged" in actions, again.out[-6000:]
    with capsys.disabled():
        print(f"\n  broken image on {service}: stack.yml failed after {failed_after:.1f} s "
              f"({failure}...), rolled back and converged after {rolled_back_after:.1f} s; "
              f"stack.yml again: {'/'.join(actions)} in {again.seconds:.1f} s", end="")  # fmt: skip


# --- data ------------------------------------------------------------------------------------------


class MariaDB:
    """SQL as root@localhost in the mariadb task's container, on its node, with the vault's root
    password (the collection set it with ALTER USER; it reaches the client on standard input)."""

    def __init__(self):
        self.password = vault_value("vault_shopstream_mariadb_root_password")
        self.task = self.node = self.container = None

    def locate(self):
        """The running task: (task ID, node); False while there is none or its container is not up."""
        tasks = running_tasks(MARIADB)
        if len(tasks) != 1:
            return False
        self.task, self.node, _state = tasks[0]
        self.container = node_exec(self.node, "docker", "ps", "-q", "--filter",
                                   f"label=com.docker.swarm.task.id={self.task}").strip()  # fmt: skip
        return bool(self.container)

    def sql(self, statement, password=None, check=True):
        proc = docker(
            "exec", "-i", self.node, "docker", "exec", "-i", self.container, "sh", "-c",
            'IFS= read -r p; MYSQL_PWD=$p exec mariadb -uroot --batch --skip-column-names -e "$1"', "sql", statement,
            stdin=(password or self.password) + "\n",
        )  # fmt: skip
        assert proc.returncode == 0 or not check, f"{self.node}: {statement}: {proc.stderr}"
        return proc.stdout.strip() if proc.returncode == 0 else None


def test_rows_in_mariadb_survive_a_forced_update_and_a_rollback(capsys):
    """Each replaces MariaDB's task on its node, on its volume. (A restart of the data node's engine
    under load, below, finds every order placed before it in MariaDB.)"""
    wait_converged()
    db = MariaDB()
    assert db.locate()
    pinned = db.node
    marker = uuid.uuid4().hex
    rows = ", ".join(f"({i}, '{marker}')" for i in range(1, 101))  # our own integers and hex: nothing to escape
    create = "CREATE TABLE platform_test.survivors (id INT PRIMARY KEY, marker CHAR(32) NOT NULL) ENGINE=InnoDB"
    insert = "INSERT INTO platform_test.survivors VALUES " + rows  # noqa: S608
    db.sql(
        f"CREATE DATABASE IF NOT EXISTS platform_test; DROP TABLE IF EXISTS platform_test.survivors; {create}; {insert}"
    )
    wanted = f"100\t5050\t{marker}\t{marker}"
    query = "SELECT COUNT(*), SUM(id), MIN(marker), MAX(marker) FROM platform_test.survivors"
    assert db.sql(query) == wanted
    timings = []

    def survived(what, previous_task):
        start = time.monotonic()
        wait_for(f"MariaDB runs again after {what} and has the rows",
                 lambda: db.locate() and db.task != previous_task and db.sql(query) == wanted, timeout=300,
                 explain=lambda: swarm("service", "ps", MARIADB, check=False))  # fmt: skip
        assert db.node == pinned, f"MariaDB moved from {pinned} to {db.node} after {what}"
        timings.append(f"{what} {time.monotonic() - start:.1f} s")

    try:
        before = db.task
        swarm("service", "update", "--force", "--detach", MARIADB)
        survived("a forced update", before)

        before = db.task
        swarm("service", "rollback", "--detach", MARIADB)
        survived("a rollback", before)
    finally:
        # The platform converged again (the services that use the data services may have restarted).
        start = time.monotonic()
        wait_converged(timeout=600)
        timings.append(f"platform converged again {time.monotonic() - start:.1f} s")
        if db.locate():
            db.sql("DROP DATABASE IF EXISTS platform_test")
        with capsys.disabled():
            print(f"\n  MariaDB rows kept through: {'; '.join(timings)}", end="")


# --- backup and restore ------------------------------------------------------------------------------


def test_a_backup_of_the_cluster_restores_its_rows_and_keys_after_a_loss_and_the_journey_passes(tmp_path, capsys):
    """The drill of a data loss on the data node: rows and a Redis key written, backup.yml, then the
    loss (a table dropped, every price changed, a later key), then restore.yml from the controller:
    the tables have the backup's rows and checksums, Redis the backup's keys, and verify.yml (which
    restore.yml runs last) passes with its journey. Both playbooks run as Molecule gives the vault
    password (the environment's ANSIBLE_VAULT_PASSWORD_FILE), with the backup key's own vault ID beside it."""
    wait_converged()
    db = MariaDB()
    assert db.locate()
    redis = "shopstream-data_redis"
    redis_password = vault_value("vault_shopstream_redis_password")
    probe = f"drill{uuid.uuid4().hex[:8]}"  # our own hex: nothing to escape

    def redis_cli(*command):
        return exec_in(redis, "redis-cli", "--no-auth-warning", "-a", redis_password, *command).strip()

    def checksums():
        tables = db.sql("SHOW TABLES FROM shopstream").split()
        return db.sql("CHECKSUM TABLE " + ", ".join(f"shopstream.{t}" for t in sorted(tables)))

    rows = ", ".join(f"({i})" for i in range(1, 101))
    create = f"CREATE TABLE shopstream.{probe} (id INT PRIMARY KEY) ENGINE=InnoDB"
    db.sql(f"{create}; INSERT INTO shopstream.{probe} VALUES {rows}")  # noqa: S608
    redis_cli("SET", f"{probe}:backed-up", "1")
    backed_up = checksums()
    assert f"shopstream.{probe}\t" in backed_up, backed_up
    backups = tmp_path / "backups"
    made = playbook("playbooks/backup.yml", "-i", INVENTORY, "-e", f"backup_dir={backups}")
    assert made.rc == 0, made.out[-4000:]
    (archive,) = backups.glob("shopstream-*.tar.gz.vault")
    assert archive.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;shopstream-backup\n")

    # The loss, and what the shop wrote after the backup.
    db.sql(f"DROP TABLE shopstream.{probe}; UPDATE shopstream.products SET price_cents = price_cents + 1")  # noqa: S608
    redis_cli("DEL", f"{probe}:backed-up")
    redis_cli("SET", f"{probe}:later", "1")
    assert checksums() != backed_up

    # verify.yml apart, to compare the tables before its journey writes a product and an order.
    restored = playbook("playbooks/restore.yml", "-i", INVENTORY, "-e", f"backup_dir={backups}",
                        "-e", "restore_confirm=yes", "--skip-tags", "verify")  # fmt: skip
    try:
        assert restored.rc == 0, restored.out[-5000:]
        assert "Restored " in restored.out, restored.out[-3000:]
        wait_for("MariaDB runs", db.locate, timeout=120)
        assert checksums() == backed_up, "every table has the backup's rows"
        assert redis_cli("EXISTS", f"{probe}:backed-up") == "1" and redis_cli("EXISTS", f"{probe}:later") == "0"
        served = playbook("playbooks/verify.yml", "-i", INVENTORY)
        assert served.rc == 0, served.out[-5000:]
    finally:
        wait_converged(timeout=600)
        if db.locate():
            db.sql(f"DROP TABLE IF EXISTS shopstream.{probe}")
        redis_cli("DEL", f"{probe}:backed-up", f"{probe}:later")
    with capsys.disabled():
        print(f"\n  drill: backup {made.seconds:.1f} s ({archive.stat().st_size} bytes), "
              f"restore {restored.seconds:.1f} s, verify.yml {served.seconds:.1f} s: "
              "100 rows and a key back, every table's checksum", end="")  # fmt: skip


# --- node faults -------------------------------------------------------------------------------------
# Under the load, as the data services above: each fault's table row gives the time from the fault
# until the swarm was whole again (every service at its replicas, every node ready and, for a
# manager, reachable) or the last failed request, whichever came later.

MANAGERS = ("manager1", "manager2", "manager3")
WORKERS = ("worker1", "worker2")
# The nodes' network (create.yml): the others' heartbeats, Raft and gossip reach a node over it.
NODE_NETWORK = "192.168.241.0/24"


def managed(*args, via, check=True):
    return node_exec(via, "docker", *args, check=check)


def node_view(via="manager1"):
    """hostname -> (state, availability, manager reachability, leader) as the manager `via` sees it."""
    out = managed("node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}", via=via)
    view = {}
    for line in out.splitlines():
        host, state, availability, *manager = line.split()
        status = manager[0] if manager else ""
        view[host] = (state.lower(), availability.lower(), "unreachable" if status == "Unreachable" else
                      "reachable" if status else "", status == "Leader")  # fmt: skip
    return view


def node_tasks(node, names=False):
    """The node's tasks meant to run: their IDs, or with names, their services' names."""
    fmt = "{{.Name}}" if names else "{{.ID}}"
    out = managed("node", "ps", "--format", fmt, "--filter", "desired-state=running", node, via="manager1")
    return [line.rsplit(".", 1)[0] if names else line for line in out.split()]


def app_tasks_on(node):
    return [name for name in node_tasks(node, names=True) if name.startswith("shopstream-app_")]


def spread_over_workers():
    """A replica of each app service of two replicas on either worker."""
    two = set(STATELESS) - {"notification"}
    return all({task.split("_")[1] for task in app_tasks_on(worker)} >= two for worker in WORKERS)


def leader(via):
    return next((host for host, view in node_view(via).items() if view[3]), None)


def swarm_whole():
    view = node_view()
    return all(node[:2] == ("ready", "active") for node in view.values()) and all(
        view[m][2] == "reachable" for m in MANAGERS
    )


def node_fault(fault, action, capsys, tolerated=None):
    """Run action() (the fault, then what brings the swarm back) under the load; the row's time is
    until the swarm is whole and every service runs its replicas, or the last failure if later."""
    began = {}

    def timed():
        began["at"] = time.monotonic()
        action()
        wait_for("every node is ready and active, every manager reachable", swarm_whole, timeout=300,
                 explain=lambda: managed("node", "ls", via="manager2", check=False))  # fmt: skip
        wait_converged(timeout=300)
        began["whole"] = time.monotonic() - began["at"]

    since = time.time()
    load, start = run_under_load(fault, timed, capsys, tolerated)
    last_failure = max((at - start for at, _failure in load.failures), default=0.0)
    stale = earlier_answers_of_the_edge(since)
    with capsys.disabled():
        print(f"    {fault}: the edge's Docker API proxy gave {len(stale)} earlier answers to reads the engine failed"
              + (f", the first: {stale[0][:200]}" if stale else ""))  # fmt: skip
    record_fault(fault, load, max(began["whole"], last_failure), capsys)
    return load, start, began["whole"]


def earlier_answers_of_the_edge(since):
    """The socket proxy's log lines since `since` (epoch s) of swarm reads the engine failed (a leader
    election) that it answered with an earlier answer, so that Traefik kept its routers."""
    for via in ("manager2", "manager3", "manager1"):
        logs = f"docker service logs --raw --since {int(since)} shopstream-edge_socket-proxy 2>&1"  # its stderr
        out = node_exec(via, "sh", "-c", logs, check=False)
        if out:
            return [line for line in out.splitlines() if "answered with its answer of" in line]
    return []


NODES = MANAGERS + WORKERS
ENGINE_REPO = "/srv/engine-repo"


def engine_package(node):
    return node_exec(node, "dpkg-query", "-W", "-f", "${Version}", "docker.io")


def offer_a_rebuilt_engine():
    """A second engine version in every node's package source, as a site's own repository serves
    one: the installed docker.io package (from the apt cache, or downloaded) rebuilt with the next
    '+shopstreamN' suffix on its version (the same binaries), in a file repository on each node."""
    installed = engine_package("manager1")
    base, _sep, n = installed.partition("+shopstream")
    new = f"{base}+shopstream{int(n or 0) + 1}"
    build = (
        f"set -e; rm -rf /tmp/engine && mkdir -p /tmp/engine/pkg {ENGINE_REPO} && cd /tmp/engine; "
        f"deb=$(ls /var/cache/apt/archives/docker.io_*.deb 2>/dev/null | head -1); "
        f'[ -n "$deb" ] || {{ apt-get download -q docker.io={base} >/dev/null && deb=$(ls docker.io_*.deb); }}; '
        f'dpkg-deb -R "$deb" pkg; sed -i "s/^Version: .*/Version: {new}/" pkg/DEBIAN/control; '
        f"dpkg-deb -Zgzip -z1 -b pkg {ENGINE_REPO}/ >/dev/null; cd {ENGINE_REPO}; "
        f"ls docker.io_*.deb | grep -v '_{new}_' | xargs -r rm; f=$(ls docker.io_*.deb); "
        # The index apt reads (dpkg-scanpackages' fields), with dpkg alone: a node has no dpkg-dev.
        f'{{ dpkg-deb -f "$f"; printf "Filename: ./%s\\nSize: %s\\nSHA256: %s\\n\\n" "$f" "$(stat -c %s "$f")" '
        f'"$(sha256sum "$f" | cut -d" " -f1)"; }} > Packages; '
        f"rm -rf /tmp/engine"
    )
    node_exec("manager1", "sh", "-c", build)
    for node in NODES:
        if node != "manager1":
            copy = f"docker exec manager1 tar -C /srv -cf - engine-repo | docker exec -i {node} tar -C /srv -xf -"
            done = subprocess.run(["sh", "-c", copy], capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr
        node_exec(node, "sh", "-c", f"echo 'deb [trusted=yes] file:{ENGINE_REPO} ./' "
                                    "> /etc/apt/sources.list.d/shopstream-engine.list")  # fmt: skip
    return installed, new


def drained_nodes():
    """The drained nodes, as the first manager that answers sees them (each restarts in turn)."""
    for via in ("manager3", "manager2", "manager1"):
        out = managed("node", "ls", "--format", "{{.Hostname}} {{.Availability}}", via=via, check=False)
        if out.strip():
            return {line.split()[0] for line in out.splitlines() if line.split()[1:] == ["Drain"]}
    return set()


def test_an_engine_upgrade_of_the_edge_the_data_node_and_a_worker_leaves_the_others_alone(capsys):
    """upgrade_engine.yml, limited to three nodes (a canary upgrade, as a site begins one), moves
    their engine package to a second version, one node at a time, managers first: drain, the
    version installed and held, the engine restarted, a manager unlocked, activated, every service
    at its replicas again; the replicas spread over the workers at the end. The nodes left out keep
    their version, and the swarm of mixed versions serves. The three are the turns that differ: the
    edge node's (Traefik's host-mode port is on it alone: nothing answers while it is drained), the
    data node's (MariaDB pinned there: the API answers 503) and a worker's (its app tasks move to the
    other worker, and back once it is active), which fails no request. No order is lost; requests
    fail only within those two turns. A rerun changes nothing. Before it, a version the package
    source lacks is refused on every node before any change, and bootstrap.yml with the new version
    pinned is refused, naming this playbook."""
    if not spread_over_workers():  # the rolling updates above may have left replicas side by side
        assert stack_playbook(live_stack_vars()).rc == 0
    assert spread_over_workers(), {worker: app_tasks_on(worker) for worker in WORKERS}
    old, new = offer_a_rebuilt_engine()
    refused = playbook("playbooks/upgrade_engine.yml", "-i", INVENTORY, "-e", "engine_version=0.0.1-none")
    flat = " ".join(refused.out.split())
    lacking = f"docker.io 0.0.1-none is not in the package source of {', '.join(NODES)} (manager1 lists: {new}, "
    assert refused.rc != 0 and lacking in flat and "Nothing was changed." in flat, refused.out[-3000:]
    assert refused.changed() == 0 and {engine_package(n) for n in NODES} == {old}
    # The engine role (site.yml, bootstrap.yml) refuses a pin the installed engine does not match.
    pinned = playbook("playbooks/bootstrap.yml", "-i", INVENTORY, "-e", f"engine_version={new}")
    flat = " ".join(pinned.out.split())
    assert pinned.rc != 0 and pinned.changed() == 0, pinned.recap
    assert f"worker2 runs docker.io {old}, and engine_version is {new}." in flat, pinned.out[-3000:]
    assert "run playbooks/upgrade_engine.yml" in flat and "Nothing was changed on this host." in flat
    assert {engine_package(n) for n in NODES} == {old}
    db = MariaDB()
    assert db.locate()
    edge_node, data_node = "manager1", db.node
    upgraded = [node for node in NODES if node in (edge_node, data_node, WORKERS[0])]
    kept = [node for node in NODES if node not in upgraded]
    upgrade = ("playbooks/upgrade_engine.yml", "-i", INVENTORY, "--limit", ",".join(upgraded))
    drained, runs, stop = {}, {}, threading.Event()

    def watch():
        # A read takes seconds under load: a node seen drained by one read was drained after the
        # previous read began, so its turn begins there (failures at its drain count in its turn).
        previous = time.monotonic()
        while not stop.is_set():
            began = time.monotonic()
            for node in drained_nodes() - set(drained):
                drained[node] = previous
            previous = began
            stop.wait(1)

    def roll():
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            runs["upgrade"] = playbook(*upgrade, "-e", f"engine_version={new}")
        finally:
            stop.set()
            watcher.join(10)
        drained["end"] = time.monotonic()
        if runs["upgrade"].rc != 0:
            # What its message tells a site to do, so that the tests after this one find every node
            # back: an engine that did not start started, and a rerun that finishes the node this
            # run left drained. The failure stands.
            for node in NODES:
                node_exec(node, "systemctl", "start", "docker", check=False)
            mend = playbook(*upgrade, "-e", f"engine_version={new}")
            pytest.fail(f"{runs['upgrade'].trouble()}\n-- the rerun that finishes it: rc {mend.rc}\n{mend.trouble()}")

    fault = f"upgrade the engine of {', '.join(upgraded)}"
    load, _start, _whole = node_fault(fault, roll, capsys, tolerated=lambda failure: True)
    run = runs["upgrade"]
    assert f"one node at a time: {', '.join(upgraded)}." in " ".join(run.out.split()), run.out[-3000:]
    # Each node's turn: from its drain until the next node's (the run drains one once the one before
    # is back and every service runs its replicas), in the load's seconds.
    order = sorted((at, node) for node, at in drained.items() if node != "end")
    assert [node for _at, node in order] == upgraded, order
    bounds = [at - load.started for at, _node in order] + [drained["end"] - load.started]
    turns = {node: (bounds[i], bounds[i + 1]) for i, (_at, node) in enumerate(order)}
    failed = {node: [f for at, f in load.failures if turns[node][0] <= at < turns[node][1]] for node in upgraded}
    with capsys.disabled():
        print("\n    node | turn in s | failed | the first, at s into the turn")
        for node in upgraded:
            first = next(
                (f"+{at - turns[node][0]:.1f} {f}" for at, f in load.failures if turns[node][0] <= at < turns[node][1]),
                "",
            )
            print(f"    {node} | {turns[node][1] - turns[node][0]:.1f} | {len(failed[node])} | {first[:100]}")
    outside = [(at, f) for at, f in load.failures if not bounds[0] <= at < bounds[-1]]
    assert not outside, f"requests failed outside the nodes' turns: {outside[:10]}"
    quiet = [n for n in upgraded if n not in (edge_node, data_node)]
    assert all(not failed[n] for n in quiet), {n: f[:5] for n, f in failed.items()}
    if data_node != edge_node:
        assert all(DATABASE_AWAY.match(f) for f in failed[data_node]), failed[data_node][:10]
    assert {engine_package(n) for n in upgraded} == {new}
    assert {engine_package(n) for n in kept} == {old}, "the nodes left out of the limit keep their engine"
    assert all(node_view(leader("manager2") or "manager2")[n][:2] == ("ready", "active") for n in NODES)
    assert not [n for n in NODES if "shopstream.upgrade" in inspect("node", n)[0]["Spec"].get("Labels", {})]
    assert spread_over_workers(), {worker: app_tasks_on(worker) for worker in WORKERS}
    again = playbook(*upgrade, "-e", f"engine_version={new}")
    assert again.rc == 0 and again.changed() == 0, again.recap
    assert f"Every node runs {new}: nothing to upgrade." in " ".join(again.out.split()), again.out[-2000:]


LOSS_WINDOW = 20  # s after a worker is lost: the client's 10 s timeout of a request it held, and margin


def test_a_worker_lost_under_load_is_replaced_and_site_yml_goes_on_without_it(capsys):
    """worker2 vanishes (its node killed, as a power loss): the swarm marks it down and starts its
    tasks on worker1 by itself. The requests it held die with it (Traefik retries only a request it
    could not send); the others do not fail: Traefik's health checks drop its tasks within 3 s, and
    the gateway gives up an upstream address that takes no connection after 2 s and tries the next,
    while DNS still lists the lost tasks. Listed in preflight_hosts_down, the lost worker does not
    stop site.yml: it goes on through the other hosts, changes nothing, and its verify step fails
    naming the node that is not ready while the shop serves. Back up, the worker rejoins by itself."""
    if not spread_over_workers():  # the rolling updates and faults above may have left replicas side by side
        assert stack_playbook(live_stack_vars()).rc == 0
    assert spread_over_workers(), {worker: app_tasks_on(worker) for worker in WORKERS}
    victim, runs = "worker2", {}
    held = len(app_tasks_on(victim))

    def lose():
        assert docker("kill", victim).returncode == 0
        wait_for(f"the swarm sees {victim} down", lambda: node_view()[victim][0] == "down", timeout=120)
        wait_for(f"{victim}'s tasks run on the other worker", lambda: converged(replicated_only=True), timeout=300,
                 explain=lambda: swarm("service", "ls", check=False))  # fmt: skip
        runs["site"] = playbook("site.yml", "-i", INVENTORY, "-e", json.dumps({"preflight_hosts_down": [victim]}))
        assert docker("start", victim).returncode == 0

    fault = f"lose {victim} ({held} app tasks), site.yml without it"
    load, start, _whole = node_fault(fault, lose, capsys, tolerated=lambda failure: True)
    late = [(round(at - start, 1), failure) for at, failure in load.failures if at - start > LOSS_WINDOW]
    assert not late, f"requests failed later than {LOSS_WINDOW} s after {victim} was lost: {late[:10]}"
    assert len(load.failures) <= 10, "more requests failed than a lost node held (printed above)"
    run = runs["site"]
    assert run.rc != 0 and run.changed() == 0, run.recap
    assert f"not reached: {victim}" in run.out, run.out[-3000:]
    assert re.search(rf"The swarm is not healthy\. Nodes: .*{victim} worker (unknown|down) ", run.out), run.out[-3000:]


def test_a_manager_cut_off_from_the_others_drops_no_request(capsys):
    """A network partition: manager3 loses every other node (iptables in its node). The other two
    keep quorum (a leader among them), the platform serves; healed, manager3 is reachable again.
    swarmkit's Raft has no pre-vote: manager3, back with a higher term and a shorter log, can depose
    the leader and leave the swarm without one for up to a minute (measured: 55 s), and the new leader
    marks down the nodes whose agents do not report within its heartbeat grace, which replaces their
    tasks. No request fails during the partition; after the heal only when the swarm replaced the edge
    node's Traefik task, which the test then prints."""

    def rule(op):
        for chain, side in (("INPUT", "-s"), ("OUTPUT", "-d")):
            node_exec("manager3", "iptables", op, chain, side, NODE_NETWORK, "-j", "DROP")

    traefik = {task for task, _node, _state in running_tasks("shopstream-edge_traefik")}
    healed = {}

    def partition():
        rule("-I")
        try:
            wait_for("manager3 is unreachable to the others", lambda: node_view()["manager3"][2] == "unreachable",
                     timeout=120)  # fmt: skip
            assert leader("manager1") in ("manager1", "manager2"), node_view()
            time.sleep(10)
        finally:
            rule("-D")
            healed["at"] = time.monotonic()
        wait_for("a leader after the heal", lambda: leader("manager2") is not None, timeout=180)
        healed["leader"] = time.monotonic() - healed["at"]

    load, _start, _whole = node_fault("partition manager3", partition, capsys, tolerated=lambda failure: True)
    replaced = {task for task, _node, _state in running_tasks("shopstream-edge_traefik")} != traefik
    with capsys.disabled():
        print(f"    partition manager3: a leader within {healed['leader']:.0f} s of the heal; "
              f"the swarm {'replaced' if replaced else 'kept'} Traefik's task")  # fmt: skip
    during = [(at, f) for at, f in load.failures if at < healed["at"] - load.started]
    assert not during, f"requests failed during the partition: {during[:10]}"
    assert replaced or not load.failures, "Traefik kept its task: no request may fail (printed above)"


def test_the_leaders_engine_killed_under_load(capsys):
    """The Raft leader's engine killed (SIGKILL): the other managers elect a leader; systemd starts
    the engine again and, with autolock, unlock.yml brings the manager back. When the leader is the
    edge node (Traefik) requests fail until then, and only until then."""
    # A manager back from a partition may call an election a moment after the swarm looked whole.
    wait_for("manager2 sees a leader", lambda: leader("manager2") is not None, timeout=60)
    old = leader("manager2")
    other = next(m for m in MANAGERS if m != old)

    def kill():
        node_exec(old, "pkill", "-KILL", "-x", "dockerd")
        wait_for("another manager leads", lambda: leader(other) not in (None, old), timeout=120)
        wait_for(f"{old}'s engine is back, locked", lambda: node_state(old) == "locked", timeout=120)
        unlock = playbook("playbooks/unlock.yml", "-i", INVENTORY)
        assert unlock.rc == 0 and f"Unlocked: {old}." in " ".join(unlock.out.split()), unlock.out[-3000:]

    db = MariaDB()
    assert db.locate()
    load, start, whole = node_fault(f"kill the leader's engine ({old})", kill, capsys, tolerated=lambda failure: True)
    if old not in ("manager1", db.node):
        assert not load.failures, "the leader was neither the edge nor the data node (printed above)"
    late = [(round(at - start, 1), failure) for at, failure in load.failures if at - start > whole + 10]
    assert not late, f"requests failed after the swarm was whole again ({whole} s): {late[:10]}"


def test_the_data_nodes_engine_restarted_under_load(capsys):
    """The data node's engine restarts (an engine upgrade, a crash): every task on it stops, and with
    autolock the manager comes back only through unlock.yml; MariaDB, Redis and RabbitMQ start again
    on their volumes. Meanwhile the SPA serves, the API answers 503 without its database, no request
    fails once the swarm is whole again, and no order is lost."""
    db = MariaDB()
    assert db.locate()
    node = db.node

    def restart():
        node_exec(node, "systemctl", "restart", "docker.service")
        wait_for(f"{node}'s engine is back, locked", lambda: node_state(node) == "locked", timeout=180)
        unlock = playbook("playbooks/unlock.yml", "-i", INVENTORY)
        assert unlock.rc == 0 and f"Unlocked: {node}." in " ".join(unlock.out.split()), unlock.out[-3000:]

    fault = f"restart the data node's engine ({node})"
    load, start, whole = node_fault(fault, restart, capsys, tolerated=DATABASE_AWAY.match)
    late = [(round(at - start, 1), failure) for at, failure in load.failures if at - start > whole + 10]
    assert not late, f"requests failed after the swarm was whole again ({whole} s): {late[:10]}"
    assert db.locate() and db.node == node, f"MariaDB moved from {node} to {db.node}: its volume is there"


def test_a_swarm_that_lost_quorum_comes_back_through_recover_yml_under_load(capsys):
    """Two of the three managers lost at once (their engines stopped, the data node among them): the
    one left, manager1 (the edge), sees no Raft leader and the swarm can change nothing, while the
    tasks that run go on serving. recover.yml, refused while quorum held, forces a new cluster on
    manager1, sets the lost managers' swarm state aside (their engines must never start with it)
    and removes their entries; the same run starts their engines and joins them again as managers
    with their labels; MariaDB starts again on its volume on its node. The forced cluster restarts
    the edge's Traefik: requests fail for one stretch from then until that Traefik reaches the
    workers again, and otherwise only API requests (502-504, while the database is away); no order
    is lost, and autolock's new key is the vault's."""
    refused = playbook("playbooks/recover.yml", "-i", INVENTORY, "-e", "recover_confirm=yes")
    said = " ".join(refused.out.split())
    assert refused.rc != 0 and refused.changed() == 0, refused.recap
    assert "The swarm has quorum: its Raft leader is seen by manager1, manager2, manager3" in said, said[-3000:]
    assert "manager2: has a leader (keys locked by autolock)" in said, said[-3000:]
    # Docker cannot force a new cluster from keys autolock encrypted (moby/moby#36852): recover.yml
    # refuses them (unit tests), so this drill runs with autolock off; recover.yml's swarm step turns
    # it on again. First, two managers restarted at once come back locked: manager2 sees no leader,
    # which is no lost quorum: the swarm step unlocks them, reads manager2 again, and goes on.
    restarted = ("manager1", "manager3")
    for host in restarted:
        node_exec(host, "systemctl", "restart", "docker.service")
    wait_for("manager1 and manager3 back, locked", lambda: {node_state(host) for host in restarted} == {"locked"})
    unlocked = playbook("playbooks/swarm.yml", "-i", INVENTORY, "-e", "swarm_autolock=false")
    assert unlocked.rc == 0, unlocked.trouble()
    assert {node_state(host) for host in MANAGERS} == {"active"}
    wait_converged()  # the edge's Traefik restarted with its engine
    db = MariaDB()
    assert db.locate()
    lost, runs = ("manager2", "manager3"), {}
    assert db.node in lost, f"MariaDB runs on {db.node}"
    old_ids = {host: managed("node", "inspect", host, "--format", "{{.ID}}", via="manager1").strip() for host in lost}

    def lose_and_recover():
        for host in lost:
            node_exec(host, "systemctl", "stop", "docker.socket", "docker.service")
        wait_for("manager1 sees no leader", lambda: "does not have a leader" in docker(
            "exec", "manager1", "docker", "node", "ls").stderr, timeout=120)  # fmt: skip
        runs["forced"] = time.monotonic()
        runs["recover"] = playbook("playbooks/recover.yml", "-i", INVENTORY, "-e", "recover_confirm=yes")
        assert runs["recover"].rc == 0, runs["recover"].trouble()

    fault = "lose 2 of 3 managers (data node too): recover.yml"
    load, start, whole = node_fault(fault, lose_and_recover, capsys, tolerated=lambda failure: True)
    # Forcing a new cluster restarts the survivor's tasks, Traefik among them on the edge: requests
    # other than the API's without its database fail from then, in one stretch, until the restarted
    # Traefik reaches the frontend's tasks on the workers again. Until then its health checks find
    # them unreachable ("no route to host", timeouts: the survivor's overlay relearns where the
    # other nodes' tasks are) and it answers 503 "no available server": 22 s after Traefik started
    # on the dev cluster, just past 30 s after the force on a busier CI run (2026-12-05). The
    # stretch is printed; what must never happen is a failure before the fault, or a second outage
    # after RECOVER_QUIET seconds without one, while the managers join again.
    forced = runs["forced"] - load.started
    spa = [(at, f) for at, f in load.failures if not DATABASE_AWAY.match(f)]
    early = [(at, f) for at, f in spa if at < forced]
    assert not early, f"requests failed before the managers were lost: {early[:10]}"
    outage = [at for at, _failure in spa]
    gaps = [(before, after) for before, after in zip(outage, outage[1:]) if after - before > RECOVER_QUIET]
    with capsys.disabled():
        print(
            f"\n    recover.yml took {runs['recover'].seconds:.1f} s; the SPA failed {len(outage)} times, "
            f"until {(outage[-1] if outage else forced) - forced:.1f} s after the managers were lost",
            end="",
        )
    assert not gaps, f"a second outage: SPA requests failed again after {RECOVER_QUIET} s without one: {gaps}"
    said = " ".join(runs["recover"].out.split())
    assert "manager1 forces a new cluster and leads it alone" in said, said[-3000:]
    assert "Swarm state moved aside, engine down: manager2, manager3." in said, said[-3000:]
    for host in lost:
        assert node_exec(host, "sh", "-c", "ls -d /var/lib/docker/swarm.before-recover-*").strip(), host
        seen = json.loads(managed("node", "inspect", host, via="manager1"))[0]
        assert seen["ID"] != old_ids[host] and seen["Spec"]["Role"] == "manager", seen["Spec"]
        assert seen["Spec"]["Labels"] == {"shopstream.tier": "data"}, seen["Spec"]["Labels"]
    hosts = managed("node", "ls", "--format", "{{.Hostname}}", via="manager1").split()
    assert len(hosts) == len(set(hosts)) and set(NODES) <= set(hosts), hosts  # the old entries are gone
    assert db.locate() and db.node in lost, "MariaDB runs again on its node"
    assert vault_value("vault_shopstream_swarm_unlock_key") == swarm("swarm", "unlock-key", "-q").strip()
    late = [(round(at - start, 1), failure) for at, failure in load.failures if at - start > whole + 10]
    assert not late, f"requests failed after the swarm was whole again ({whole} s): {late[:10]}"


def test_each_manager_listens_for_the_swarm_on_its_own_address_only():
    """The management port (2377) is bound to each manager's advertise address, never to every
    interface (CIS Docker Benchmark 7.x): swarm_listen_addr defaults to the advertise address."""
    for manager in MANAGERS:
        addr = json.loads(managed("node", "inspect", manager, via="manager1"))[0]["ManagerStatus"]["Addr"]
        bound = [line.split()[3] for line in node_exec(manager, "ss", "-Hltn", "sport", "=", ":2377").splitlines()]
        assert bound == [addr], f"{manager} listens on {bound} for 2377; its advertise address is {addr}"
