"""The ShopStream journey in real containers: the kit's MariaDB, Redis and RabbitMQ, the app image's five
services and the frontend image, on a user-defined bridge network, secrets as bind-mounted 0400 files.

login -> create product -> place order -> notification over WebSocket; 401 on a bad JWT, 429 past the
rate limit; every log line JSON without a secret; SIGTERM stops each service with exit 0.

The images come from the kit, built here from nothing when the host has none (or reused when built
from identical inputs). Everything it creates is named journeytest-*, and removed at the end.
"""

import base64
import hashlib
import http.client
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._journey import Client, WebSocket, run_journey

PREFIX = "journeytest-"
APP_UID = 10001  # user "app" of the python image, which the app image runs as
RABBITMQ_UID = 999
SERVICES = ("auth", "product", "order", "notification", "gateway")
RATE_LIMIT = 30


def docker(*args, check=True, timeout=300):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def pause(name, attempts=5):
    """docker pause: runc's freeze of the container's cgroup may give up while its processes are
    busy ("unable to freeze", then it thaws them); a moment later it succeeds."""
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(["docker", "pause", name], capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode == 0:
            return
        assert "unable to freeze" in proc.stderr and attempt < attempts, (
            f"docker pause {name} failed (attempt {attempt}): {proc.stderr.strip()}"
        )
        time.sleep(1)


@pytest.fixture(scope="module")
def kit_images(kit_ref):
    """{name: ref} of the images the journey needs, built by the kit from nothing on a fresh host
    (or reused when built from identical inputs): the journey never skips for want of an image."""
    return {name: kit_ref(name) for name in ("python", "nginx", "mariadb", "redis", "rabbitmq", "app", "frontend")}


def wait_healthy(name, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name))
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if not state["Running"]:
            raise AssertionError(f"{name} exited ({state['ExitCode']}):\n{docker('logs', '--tail', '40', name)}")
        time.sleep(1)
    raise AssertionError(f"{name} not healthy after {timeout} s:\n{docker('logs', '--tail', '40', name)}")


def rabbitmq_hash(password):
    """A RabbitMQ definitions password_hash (rabbit_password_hashing_sha256)."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class Journey:
    def __init__(self, images):
        self.images = images
        self.run_id = uuid.uuid4().hex[:8]
        self.network = f"{PREFIX}{self.run_id}"
        self.containers = []
        self.dir = tempfile.mkdtemp(prefix=PREFIX)
        self.secrets = {
            name: secrets.token_urlsafe(24)
            for name in ("db_root_password", "db_password", "redis_password", "rabbitmq_password", "demo_password")
        }
        self.secrets["jwt_signing_key"] = secrets.token_urlsafe(48)

    def secret_file(self, name, content, uid=0):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content + "\n")
        os.chown(path, uid, uid)
        os.chmod(path, 0o400)
        return path

    def mount(self, name, target=None):
        return ["-v", f"{os.path.join(self.dir, name)}:{target or '/run/secrets/' + name}:ro"]

    def run(self, short, image, *args, env=None, mounts=(), fast_health=True):
        name = f"{PREFIX}{self.run_id}-{short}"
        argv = ["run", "-d", "--name", name, "--network", self.network, "--network-alias", short]
        argv += ["--label", "journeytest=1"]
        if fast_health:
            argv += ["--health-interval", "1s", "--health-start-period", "120s"]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        for mount in mounts:
            argv += mount
        docker(*argv, image, *args)
        self.containers.append(name)
        return name

    def address(self, name):
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return docker("inspect", "--format", fmt, name)

    def start(self):
        docker("network", "create", "--driver", "bridge", "--label", "journeytest=1", self.network)
        s = self.secrets
        self.secret_file("db_root_password", s["db_root_password"])  # read by MariaDB's entrypoint, as root
        # Owned by the services' user; db_password and redis_password are read by the MariaDB and Redis
        # entrypoints too, as root.
        for name in ("db_password", "redis_password", "rabbitmq_password", "jwt_signing_key", "demo_password"):
            self.secret_file(name, s[name], APP_UID)
        # The user names the services compute from their passwords: a user per password (rotations).
        mq_user = "shopstream-" + hashlib.sha256(s["rabbitmq_password"].encode()).hexdigest()[:8]
        db_user = "shopstream-" + hashlib.sha256(s["db_password"].encode()).hexdigest()[:8]
        definitions = {
            "users": [
                {
                    "name": mq_user,
                    "password_hash": rabbitmq_hash(s["rabbitmq_password"]),
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": [],
                }
            ],
            "vhosts": [{"name": "/"}],
            "permissions": [{"user": mq_user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
        }
        self.secret_file("rabbitmq_definitions", json.dumps(definitions), RABBITMQ_UID)
        self.mariadb = self.run(
            "mariadb",
            self.images["mariadb"],
            env={
                "MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/db_root_password",
                "MARIADB_DATABASE": "shopstream",
                "MARIADB_USER": db_user,
                "MARIADB_PASSWORD_FILE": "/run/secrets/db_password",
            },
            mounts=[self.mount("db_root_password"), self.mount("db_password")],
        )
        self.redis = self.run(
            "redis",
            self.images["redis"],
            env={"REDIS_PASSWORD_FILE": "/run/secrets/redis_password"},
            mounts=[self.mount("redis_password")],
        )
        self.rabbitmq = self.run(
            "rabbitmq",
            self.images["rabbitmq"],
            mounts=[self.mount("rabbitmq_definitions", "/etc/rabbitmq/definitions.json")],
            # Its image's interval: each check starts an Erlang VM, seconds of CPU.
            fast_health=False,
        )
        common_mounts = {
            "auth": ["db_password", "jwt_signing_key", "demo_password"],
            "product": ["db_password", "jwt_signing_key"],
            "order": ["db_password", "rabbitmq_password", "jwt_signing_key"],
            "notification": ["rabbitmq_password", "jwt_signing_key"],
            "gateway": ["jwt_signing_key", "redis_password"],
        }
        env = {
            "gateway": {
                "RATE_LIMIT_REQUESTS": str(RATE_LIMIT),
                "RATE_LIMIT_WINDOW_SECONDS": "3600",
                "RATE_LIMIT_LOGIN_REQUESTS": "20",
            }
        }
        # The services start before their dependencies are up, as in a swarm: they must wait, not crash.
        self.apps = {
            svc: self.run(
                svc,
                self.images["app"],
                svc,
                env={"DEMO_USER": "demo", **env.get(svc, {})},
                mounts=[self.mount(n) for n in common_mounts[svc]],
            )
            for svc in SERVICES
        }
        for name in (self.mariadb, self.redis, self.rabbitmq, *self.apps.values()):
            wait_healthy(name)
        self.gateway = (self.address(self.apps["gateway"]), 8080)

    def cleanup(self):
        for name in self.containers:
            docker("rm", "-f", "-v", name, check=False)
        docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, method, path, body=None, token=None, headers=None):
        """(status, JSON body, headers) of one request to the gateway (the collection's journey client)."""
        return Client(f"http://{self.gateway[0]}:{self.gateway[1]}").call(method, path, body, token, headers)


# --- the journey ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def journey(kit_images):
    j = Journey(kit_images)
    started = time.monotonic()
    try:
        j.start()
        print(f"journey: dependencies and services healthy in {time.monotonic() - started:.1f} s")
        yield j
    finally:
        j.cleanup()


@pytest.fixture(scope="module")
def token(journey):
    status, body, _headers = journey.call(
        "POST", "/api/auth/login", {"username": "demo", "password": journey.secrets["demo_password"]}
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"  # noqa: S105
    return body["token"]


@pytest.fixture(scope="module")
def idle_ws(journey, token):
    """A WebSocket client that stays connected until the services stop (opened before the rate limit is spent)."""
    ws = WebSocket(journey.gateway, "/api/notifications/ws", ["bearer", token])
    assert ws.status == 101
    yield ws
    ws.close()


def test_login_rejects_a_wrong_password(journey):
    status, body, _headers = journey.call("POST", "/api/auth/login", {"username": "demo", "password": "wrong-password"})
    assert status == 401
    status, _body, _headers = journey.call("POST", "/api/auth/login", {"username": "nobody", "password": "x"})
    assert status == 401


def test_an_account_is_locked_with_a_doubling_back_off_after_failed_logins(journey):
    """Five failures in a row lock demo for 1 s, the next for 2 s: the right password gets 429 meanwhile."""

    def login(password):
        return journey.call("POST", "/api/auth/login", {"username": "demo", "password": password})

    right, wrong = journey.secrets["demo_password"], "wrong-password"
    assert login(right)[0] == 200  # a success clears earlier failures
    assert [login(wrong)[0] for _attempt in range(5)] == [401] * 5
    status, body, headers = login(right)
    assert (status, headers["Retry-After"]) == (429, "1"), body
    time.sleep(1.2)
    assert login(wrong)[0] == 401
    status, _body, headers = login(right)
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 2
    time.sleep(int(headers["Retry-After"]) + 0.2)
    assert login(right)[0] == 200
    assert login(wrong)[0] == 401 and login(right)[0] == 200  # the count started again


def test_journey_product_order_notification(journey, token, idle_ws):
    status, product, _headers = journey.call(
        "POST", "/api/products", {"name": "Mug", "price_cents": 1299, "stock": 5}, token
    )
    assert status == 201, product
    status, listing, _headers = journey.call("GET", "/api/products", token=token)
    assert status == 200 and product in listing["products"]

    ws = WebSocket(journey.gateway, "/api/notifications/ws", ["bearer", token])
    try:
        assert ws.status == 101, ws.headers
        assert ws.headers.get("sec-websocket-protocol") == "bearer"
        time.sleep(0.5)
        status, order, _headers = journey.call(
            "POST", "/api/orders", {"items": [{"product_id": product["id"], "quantity": 2}]}, token
        )
        assert status == 201, order
        assert order["total_cents"] == 2598 and order["user"] == "demo"
        opcode, payload = ws.receive(timeout=20)
        assert opcode == 0x1
        message = json.loads(payload)
        assert message["type"] == "order.created"
        assert message["event_id"] == order["event_id"]
        assert message["order"]["id"] == order["id"] and message["order"]["total_cents"] == 2598
    finally:
        ws.close()
    status, orders, _headers = journey.call("GET", "/api/orders", token=token)
    assert status == 200 and orders["orders"][0]["id"] == order["id"]


def test_the_modules_journey_client_walks_it(journey, token):
    """plugins/module_utils/_journey.run_journey, which shopstream.swarm.platform_journey runs through Traefik."""
    client = Client(f"http://{journey.gateway[0]}:{journey.gateway[1]}")
    result = run_journey(client, "demo", journey.secrets["demo_password"], product_name="Journey client")
    assert [step["step"] for step in result["steps"]] == [
        "login",
        "create product",
        "notification websocket",
        "place order",
        "notification",
    ]
    assert result["steps"][-1]["type"] == "order.created" and result["steps"][-1]["order_id"] == result["order_id"]
    assert journey.secrets["demo_password"] not in json.dumps(result)
    # Its product is sold and found by its id, never listed in the catalogue shoppers see.
    status, listing, _headers = journey.call("GET", "/api/products?limit=500", token=token)
    assert status == 200 and listing["products"] and all(p["listed"] for p in listing["products"])
    assert result["product_id"] not in [p["id"] for p in listing["products"]]
    status, product, _headers = journey.call("GET", f"/api/products/{result['product_id']}", token=token)
    assert status == 200 and product["name"] == "Journey client" and product["listed"] is False


def test_bad_or_missing_jwt_is_401(journey, token):
    head, body, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    for bad in (None, "not-a-jwt", f"{head}.{body}.{sig[:-4]}AAAA", f"{forged}.{body}."):
        status, _body, headers = journey.call("GET", "/api/products", token=bad)
        assert status == 401, bad
        assert headers["WWW-Authenticate"].startswith("Bearer")
    ws = WebSocket(journey.gateway, "/api/notifications/ws", ["bearer", "not-a-jwt"])
    assert ws.status == 401
    ws.close()


def test_rate_limit_yields_429(journey, token):
    statuses = []
    for _attempt in range(RATE_LIMIT + 2):
        status, _body, headers = journey.call("GET", "/api/products", token=token)
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) > 0
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {200}


def test_metrics_and_health(journey):
    for svc, name in journey.apps.items():
        out = docker(
            "exec",
            name,
            "python3",
            "-c",
            "import urllib.request as u;print(u.urlopen('http://127.0.0.1:8080/metrics').read().decode())",
        )
        assert "# TYPE shopstream_http_requests_total counter" in out, svc
        assert "shopstream_http_request_duration_seconds_bucket" in out, svc
        assert docker("exec", name, "id", "-u") == str(APP_UID)
    status, body, _headers = journey.call("GET", "/healthz")
    assert status == 200 and body["checks"] == {"redis": "ok"}
    pause(journey.redis)  # the gateway's rate limiter stops answering: it counts per replica
    try:
        status, body, _headers = journey.call("GET", "/healthz")
        assert status == 200 and body["status"] == "degraded" and body["checks"]["redis"].startswith("error"), body
    finally:
        docker("unpause", journey.redis)
    assert journey.call("GET", "/healthz")[0] == 200


def test_a_database_that_cannot_answer_is_a_503_with_retry_after_never_a_500(journey, token):
    # To product itself: the gateway's limit of this test's user is used up by test_rate_limit_yields_429.
    product = Client(f"http://{journey.address(journey.apps['product'])}:8080")
    pause(journey.mariadb)  # MariaDB restarting, as a client sees it: no answer
    try:
        status, body, headers = product.call("GET", "/api/products", token=token)
    finally:
        docker("unpause", journey.mariadb)
    assert (status, headers["Retry-After"]) == (503, "5"), body
    assert product.call("GET", "/api/products", token=token)[0] == 200


def test_an_order_is_placed_while_rabbitmq_restarts_and_its_event_follows(journey, token, idle_ws):
    """The outbox: order writes the event with the order, and its relay publishes it once the broker
    is back; order and notification stay up ("degraded") meanwhile."""
    order_api = Client(f"http://{journey.address(journey.apps['order'])}:8080")
    product_api = Client(f"http://{journey.address(journey.apps['product'])}:8080")
    item = {"name": "Outbox mug", "price_cents": 500, "stock": 3, "listed": False}
    status, product, _headers = product_api.call("POST", "/api/products", item, token)
    assert status == 201, product
    docker("stop", journey.rabbitmq)
    try:
        status, order, _headers = order_api.call(
            "POST", "/api/orders", {"items": [{"product_id": product["id"], "quantity": 1}]}, token
        )
        assert status == 201, order
        for svc in ("order", "notification"):
            status, health, _headers = Client(f"http://{journey.address(journey.apps[svc])}:8080").call(
                "GET", "/healthz"
            )
            assert status == 200 and health["checks"]["rabbitmq"].startswith("error"), (svc, health)
    finally:
        docker("start", journey.rabbitmq)
    started, events = time.monotonic(), []
    while not any(event.get("event_id") == order["event_id"] for event in events):  # earlier orders' may come first
        opcode, payload = idle_ws.receive(timeout=max(1.0, 240 - (time.monotonic() - started)))
        assert opcode == 0x1, (opcode, payload)
        events.append(json.loads(payload))
    print(f"the event of an order placed while RabbitMQ was stopped came {time.monotonic() - started:.1f} s later")
    wait_healthy(journey.rabbitmq)


def test_a_rotated_demo_password_logs_in_with_either_value_until_retired(journey):
    """A rotation of demo_password under a rolling update of auth: the task started with the new
    value and the replaced one (DEMO_PASSWORD_PREVIOUS_FILE) writes the new value's hash to MariaDB;
    the old task (its file holds the replaced value) and the new one both accept both passwords.
    Once retired (the previous file holds the new value too), a task accepts the new one alone."""
    old, new = journey.secrets["demo_password"], secrets.token_urlsafe(24)
    journey.secret_file("demo_password_new", new, APP_UID)

    def auth(files):
        mounts = [journey.mount(name, "/run/secrets/" + target) for name, target in files]
        name = journey.run(
            f"auth-{len(journey.containers)}",
            journey.images["app"],
            "auth",
            env={"DEMO_USER": "demo", "DEMO_PASSWORD_PREVIOUS_FILE": "/run/secrets/demo_password_previous"},
            mounts=[journey.mount("db_password"), journey.mount("jwt_signing_key"), *mounts],
        )
        wait_healthy(name)
        return Client(f"http://{journey.address(name)}:8080")

    def logins(client):
        """Which of (old, new) log the demo user in, waiting out a lock the earlier tests may have left."""
        accepted = []
        for password in (old, new):
            credentials = {"username": "demo", "password": password}
            status, body, headers = client.call("POST", "/api/auth/login", credentials)
            if status == 429:
                time.sleep(int(headers["Retry-After"]) + 0.2)
                status, body, headers = client.call("POST", "/api/auth/login", credentials)
            assert status in (200, 401), (status, body)
            accepted.append(status == 200)
        return tuple(accepted)

    before = Client(f"http://{journey.address(journey.apps['auth'])}:8080")
    assert logins(before) == (True, False)
    moved = auth([("demo_password_new", "demo_password"), ("demo_password", "demo_password_previous")])
    assert logins(moved) == (True, True), "the moved task accepts the new password and the replaced one"
    assert logins(before) == (True, True), "the task not moved yet accepts its own value and MariaDB's (the new one)"
    retired = auth([("demo_password_new", "demo_password"), ("demo_password_new", "demo_password_previous")])
    assert logins(retired) == (False, True), "once retired, the replaced password is refused"


def test_logs_are_json_and_never_show_a_secret(journey):
    for svc, name in journey.apps.items():
        proc = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=True)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        assert lines, svc
        for line in lines:
            entry = json.loads(line)
            assert entry["service"] == svc and "level" in entry
            for secret in journey.secrets.values():
                assert secret not in line, f"{svc} logged a secret"


def test_sigterm_stops_each_service_with_exit_0(journey, idle_ws):
    # idle_ws is still connected: the gateway must close it (1001, going away) and still exit 0 in time.
    for svc in ("gateway", "notification", "order", "product", "auth"):
        name = journey.apps[svc]
        started = time.monotonic()
        docker("kill", "--signal", "TERM", name)
        code = docker("wait", name, timeout=40)
        elapsed = time.monotonic() - started
        logs = docker("logs", "--tail", "5", name)
        assert code == "0", f"{svc} exited {code}:\n{logs}"
        assert '"msg":"stopped"' in logs and elapsed < 25, (svc, elapsed)
        print(f"{svc}: exit 0 {elapsed:.1f} s after SIGTERM")
        if svc == "gateway":
            opcode, payload = idle_ws.receive(timeout=5)
            while opcode == 0x1:  # it also received the journey's notification
                opcode, payload = idle_ws.receive(timeout=5)
            assert (opcode, payload[:2]) == (0x8, (1001).to_bytes(2, "big"))


def test_a_missing_secret_file_stops_each_service_with_a_clear_error(kit_images):
    images = kit_images
    for svc, variable in (
        ("auth", "DB_PASSWORD_FILE"),
        ("gateway", "JWT_SIGNING_KEY_FILE"),
        ("order", "DB_PASSWORD_FILE"),
        ("notification", "RABBITMQ_PASSWORD_FILE"),
    ):
        proc = subprocess.run(
            ["docker", "run", "--rm", "--name", f"{PREFIX}{uuid.uuid4().hex[:8]}", images["app"], svc],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, (svc, proc.stdout, proc.stderr)
        entry = json.loads(proc.stdout.strip().splitlines()[-1])
        assert entry["level"] == "error" and variable in entry["msg"] and "missing" in entry["msg"], entry


# --- the frontend image ----------------------------------------------------------------------------


def test_frontend_serves_the_spa_without_proxying(kit_images):
    images = kit_images
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}-frontend"
    try:
        docker("run", "-d", "--name", name, "--health-interval", "1s", images["frontend"])
        wait_healthy(name, timeout=60)
        assert (
            "syntax is ok"
            in subprocess.run(
                ["docker", "exec", name, "nginx", "-t"], capture_output=True, text=True, check=True
            ).stderr
        )
        ip = docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", name)

        def get(path):
            conn = http.client.HTTPConnection(ip, 80, timeout=10)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                return resp.status, resp.read().decode(), resp.headers
            finally:
                conn.close()

        status, body, headers = get("/")
        assert status == 200 and "<title>ShopStream</title>" in body
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert get("/app.js")[0] == 200 and "/api/notifications/ws" in get("/app.js")[1]
        assert get("/products/7")[1] == body  # SPA fallback
        assert get("/api/products")[0] == 404  # /api is the gateway's, never the SPA's
        docker("kill", "--signal", "QUIT", name)
        assert docker("wait", name, timeout=30) == "0"
    finally:
        docker("rm", "-f", name, check=False)
