"""The gateway in-process, with an in-memory Redis and a stand-in upstream: 401, 429, routing, the caller's token."""

import http.client
import json
import socket
import threading

import pytest
from services_fakes import FakeRedis
from shopstream import clients, config, gateway, server, tokens

KEY = "g" * 40


def request(address, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


def start(app):
    thread = threading.Thread(target=app.run, args=("127.0.0.1", 0, False), daemon=True)
    thread.start()
    assert app.listening.wait(5)
    return thread


@pytest.fixture
def stack(secrets_dir, monkeypatch):
    (secrets_dir / "jwt_signing_key").write_text(KEY)
    (secrets_dir / "redis_password").write_text("unused")
    redis = FakeRedis()
    monkeypatch.setattr(clients, "redis_client", lambda: redis)
    upstream = server.App("upstream", verify_token=tokens.token_verifier([KEY], "shopstream-auth"))
    seen = []

    def echo(req):
        seen.append(req)
        return 200, {"path": req.path, "user": req.user, "body": req.body().decode()}, {"X-Secret-Header": "no"}

    upstream.route("*", "/api/auth/.*", echo)  # like auth: anonymous
    upstream.route("*", "/api/.*", echo, user=True)  # like product, order: verifies the token again
    threads = [start(upstream)]
    for name in ("auth", "product", "order"):
        monkeypatch.setenv(f"{name.upper()}_HOST", "127.0.0.1")
        monkeypatch.setenv(f"{name.upper()}_PORT", str(upstream.address[1]))
    monkeypatch.setenv("RATE_LIMIT_REQUESTS", "5")
    monkeypatch.setenv("RATE_LIMIT_LOGIN_REQUESTS", "2")
    app = gateway.build()
    threads.append(start(app))
    yield app.address, seen, redis
    for a in (app, upstream):
        a.stopping.set()
    for t in threads:
        t.join(10)


def bearer(sub="demo", key=KEY, ttl=600):
    return {"Authorization": "Bearer " + tokens.issue_jwt(key, sub, ttl)}


def test_login_needs_no_token_and_is_forwarded(stack):
    address, seen, _redis = stack
    status, body, headers = request(
        address, "POST", "/api/auth/login", b'{"username":"demo"}', {"Content-Type": "application/json"}
    )
    assert status == 200
    assert json.loads(body) == {"path": "/api/auth/login", "user": None, "body": '{"username":"demo"}'}
    assert "X-Secret-Header" not in headers and headers["X-Request-Id"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Basic ZGVtbzpkZW1v"},
        bearer(key="x" * 40),
        bearer(ttl=-600),
    ],
)
def test_missing_or_bad_token_is_401_and_not_forwarded(stack, headers):
    address, seen, _redis = stack
    status, body, resp_headers = request(address, "GET", "/api/products", headers=headers)
    assert status == 401
    assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    assert not seen


def test_the_callers_token_is_forwarded_and_no_identity_header(stack):
    address, seen, _redis = stack
    token = bearer("alice")
    headers = {**token, "X-Shopstream-User": "admin", "X-Forwarded-User": "admin"}
    status, body, _headers = request(address, "POST", "/api/orders", b'{"items":[]}', headers)
    assert status == 200
    assert json.loads(body)["user"] == "alice"  # from the token, which the upstream verified again
    assert seen[0].headers.get_all("Authorization") == [token["Authorization"]]
    assert "X-Shopstream-User" not in seen[0].headers and "X-Forwarded-User" not in seen[0].headers
    assert request(address, "GET", "/api/products/3?limit=2", headers=bearer())[0] == 200
    assert seen[-1].path == "/api/products/3" and seen[-1].query == {"limit": "2"}


def test_rate_limit_per_client_answers_429(stack):
    address, _seen, _redis = stack
    statuses = [request(address, "GET", "/api/products", headers=bearer("bob"))[0] for _attempt in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    status, _body, headers = request(address, "GET", "/api/products", headers=bearer("bob"))
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert request(address, "GET", "/api/products", headers=bearer("carol"))[0] == 200  # another client


def test_login_has_its_own_stricter_limit(stack):
    address, _seen, _redis = stack
    statuses = [request(address, "POST", "/api/auth/login", b"{}")[0] for _attempt in range(3)]
    assert statuses == [200, 200, 429]


def test_without_redis_each_replica_counts_alone_and_healthz_says_degraded(stack, monkeypatch):
    """Redis restarting (a rotation of its password): no request fails for it, logins stay limited,
    and Traefik keeps the gateway (200); once Redis answers again it counts again."""
    address, seen, redis = stack
    monkeypatch.setattr(gateway, "REDIS_RETRY_SECONDS", 0.0)  # every request tries Redis first
    working_pipeline, working_ping = redis.pipeline, redis.ping

    def down(transaction=True):
        raise ConnectionError("redis down")

    redis.pipeline = down
    redis.ping = down
    assert request(address, "GET", "/api/products", headers=bearer())[0] == 200
    statuses = [request(address, "POST", "/api/auth/login", b"{}")[0] for _attempt in range(3)]
    assert statuses == [200, 200, 429], "the login limit holds in the replica's own memory"
    assert [req.path for req in seen] == ["/api/products", "/api/auth/login", "/api/auth/login"]
    status, body, _headers = request(address, "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "degraded", "checks": {"redis": "error: ConnectionError"}}

    redis.pipeline, redis.ping = working_pipeline, working_ping
    assert request(address, "GET", "/api/products", headers=bearer("dave"))[0] == 200
    assert any(key.startswith("shopstream:ratelimit:api:user:dave:") for key in redis.data), "Redis counts again"
    status, body, _headers = request(address, "GET", "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_unknown_paths_and_upstream_down(stack, monkeypatch):
    address, _seen, _redis = stack
    assert request(address, "GET", "/api/secrets", headers=bearer())[0] == 404
    assert request(address, "GET", "/metrics")[0] == 200


def test_an_upstream_address_that_takes_no_connection_is_passed_over_for_the_next(stack, monkeypatch):
    """dnsrr: the name gives one address per task; one whose node is gone is given up after the
    connect timeout (not the request's), and the next is tried."""
    live = ("127.0.0.1", int(config.env("PRODUCT_PORT", "0")))
    gone = ("127.0.0.1", closed_port())
    resolve, connects = socket.getaddrinfo, []

    def two_tasks(host, port, *args, **kwargs):
        if host != "product.test":
            return resolve(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", target) for target in (gone, live)]

    # Only the gateway's own sockets count: the product server's accepted socket is a Recorded too
    # (socket.accept makes it with the module's class) and sets its own timeout meanwhile.
    class Recorded(socket.socket):
        def connect(self, target):
            self.target = target
            connects.append((target, self.gettimeout()))
            super().connect(target)

        def settimeout(self, value):
            if getattr(self, "target", None) == live and connects[-1][0] == live:
                connects.append(("answer", value))
            super().settimeout(value)

    monkeypatch.setenv("PRODUCT_HOST", "product.test")
    app = gateway.build()
    thread = start(app)
    monkeypatch.setattr(socket, "getaddrinfo", two_tasks)
    monkeypatch.setattr(socket, "socket", Recorded)
    try:
        assert request(app.address, "GET", "/api/products", headers=bearer())[0] == 200
    finally:
        app.stopping.set()
        thread.join(10)
    # Both addresses under the 2 s connect timeout, then the 15 s timeout for the answer.
    assert [c for c in connects if c[0] in (gone, live, "answer")] == [(gone, 2), (live, 2), ("answer", 15)]


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_client_address_takes_the_trusted_proxy_entry():
    assert gateway.client_address("10.0.0.2", "1.1.1.1, 2.2.2.2", 1) == "2.2.2.2"
    assert gateway.client_address("10.0.0.2", "1.1.1.1, 2.2.2.2", 0) == "10.0.0.2"
    assert gateway.client_address("10.0.0.2", None, 1) == "10.0.0.2"


def test_bearer_token_from_header_or_websocket_subprotocol():
    assert tokens.bearer_token({"Authorization": "Bearer abc"}) == ("abc", False)
    assert tokens.bearer_token({"Sec-WebSocket-Protocol": "bearer, a.b.c"}) == ("a.b.c", True)
    assert tokens.bearer_token({"Sec-WebSocket-Protocol": "chat"}) == (None, False)
