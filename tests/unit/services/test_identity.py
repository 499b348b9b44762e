"""No service behind the gateway takes an identity from a header: product, order and notification verify the
caller's token themselves, so a request from inside the backend network names a user only with a token auth
signed. Each service is built as in its container (its secrets in the secrets directory), with no database or
broker: a request with a valid token gets past the check (503 still starting, or 400 for the empty body), every
forgery gets 401."""

import http.client
import sys
import threading
import types

import pytest
from shopstream import server, tokens

KEY, PREVIOUS = "k" * 40, "p" * 40


def none_token(sub):
    header = tokens.b64url_encode(b'{"alg":"none","typ":"JWT"}')
    claims = tokens.b64url_encode(f'{{"sub":"{sub}","iat":1,"exp":9999999999,"iss":"shopstream-auth"}}'.encode())
    return f"{header}.{claims}."


FORGED = {
    "identity header": {"X-Shopstream-User": "demo"},
    "token of another key": {"Authorization": "Bearer " + tokens.issue_jwt("x" * 40, "demo", 600)},
    "alg none": {"Authorization": "Bearer " + none_token("demo")},
    "expired token": {"Authorization": "Bearer " + tokens.issue_jwt(KEY, "demo", -600)},
    "another issuer": {"Authorization": "Bearer " + tokens.issue_jwt(KEY, "demo", 600, issuer="someone")},
}
ROUTES = {
    "product": [("GET", "/api/products"), ("POST", "/api/products"), ("GET", "/api/products/1")],
    "order": [("GET", "/api/orders"), ("POST", "/api/orders")],
}


@pytest.fixture
def service(secrets_dir, monkeypatch):
    for name, value in {
        "jwt_signing_key": KEY,
        "jwt_previous_signing_key": PREVIOUS,
        "db_password": "pw",
        "rabbitmq_password": "pw",
    }.items():
        (secrets_dir / name).write_text(value)
    monkeypatch.setattr(server, "retry_forever", lambda *args, **kwargs: None)  # never ready: no database here
    fake_pika = types.SimpleNamespace(
        ConnectionParameters=lambda **kw: kw, PlainCredentials=lambda user, password: (user, password)
    )
    monkeypatch.setitem(sys.modules, "pika", fake_pika)
    started = []

    def start(name):
        module = __import__(f"shopstream.{name}", fromlist=["build"])
        app = module.build()
        thread = threading.Thread(target=app.run, args=("127.0.0.1", 0, False), daemon=True)
        thread.start()
        assert app.listening.wait(5)
        started.append((app, thread))
        return app

    yield start
    for app, thread in started:
        app.stopping.set()
        thread.join(10)


def status(app, method, path, headers):
    conn = http.client.HTTPConnection(*app.address, timeout=10)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.headers.get("WWW-Authenticate", "")
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_a_forged_identity_from_the_backend_network_gets_401(service, name):
    app = service(name)
    for method, path in ROUTES[name]:
        for forgery, headers in FORGED.items():
            code, challenge = status(app, method, path, headers)
            assert (code, challenge.startswith("Bearer")) == (401, True), f"{name} {method} {path}: {forgery}"


@pytest.mark.parametrize("name", sorted(ROUTES))
@pytest.mark.parametrize("key", [KEY, PREVIOUS], ids=["current-key", "previous-key"])
def test_a_token_auth_signed_gets_past_the_check(service, name, key):
    app = service(name)
    for method, path in ROUTES[name]:
        headers = {"Authorization": "Bearer " + tokens.issue_jwt(key, "demo", 600)}
        assert status(app, method, path, headers)[0] in (400, 503), f"{name} {method} {path}"  # not 401


def test_a_route_for_verified_callers_needs_a_verifier():
    with pytest.raises(ValueError, match="needs a token verifier"):
        server.App("lonely").route("GET", "/x", lambda req: (200, {}), user=True)
