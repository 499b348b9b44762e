"""The services' HTTP core: routes, /healthz, /metrics, JSON access logs, and the drain on SIGTERM."""

import http.client
import json
import logging
import threading
import time

import pytest
from shopstream import config, server, websocket


def request(app, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(*app.address, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.headers
    finally:
        conn.close()


@pytest.fixture
def serve():
    """Start an App on a free port in a thread; stop it at the end. Returns a dict with the run's result."""
    started = []

    def start(app):
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("rc", app.run("127.0.0.1", 0, False)), daemon=True)
        thread.start()
        assert app.listening.wait(5)
        started.append((app, thread))
        result["thread"] = thread
        return result

    yield start
    for app, thread in started:
        app.stopping.set()
        thread.join(30)


def test_in_flight_request_completes_during_drain(serve, monkeypatch):
    monkeypatch.setenv("DRAIN_TIMEOUT_SECONDS", "10")
    app = server.App("test")
    app.ready.set()
    entered = threading.Event()

    def slow(req):
        entered.set()
        time.sleep(1.0)
        return 200, {"done": True}

    app.route("GET", "/slow", slow)
    run = serve(app)
    answer = {}
    client = threading.Thread(target=lambda: answer.update(r=request(app, "GET", "/slow")))
    client.start()
    assert entered.wait(5)
    app.stopping.set()  # what the SIGTERM handler does
    time.sleep(0.3)
    assert app.draining
    client.join(10)
    run["thread"].join(10)
    assert answer["r"][0] == 200 and json.loads(answer["r"][1]) == {"done": True}
    assert run["rc"] == 0
    with pytest.raises(OSError):
        request(app, "GET", "/healthz")


def test_drain_gives_up_after_its_timeout(serve, monkeypatch):
    monkeypatch.setenv("DRAIN_TIMEOUT_SECONDS", "0")
    app = server.App("test")
    entered = threading.Event()
    app.route("GET", "/hang", lambda req: (entered.set(), time.sleep(3), (200, {}))[2])
    run = serve(app)
    threading.Thread(target=lambda: request(app, "GET", "/hang"), daemon=True).start()
    assert entered.wait(5)
    app.stopping.set()
    run["thread"].join(5)
    assert run["rc"] == 1


def test_healthz_reports_each_dependency(serve):
    app = server.App("test")
    run = serve(app)
    assert request(app, "GET", "/healthz")[0] == 503  # not ready yet
    app.ready.set()
    state = {"up": False}

    def redis():
        if not state["up"]:
            raise ConnectionError("down")

    app.health_checks["redis"] = redis
    status, body, _headers = request(app, "GET", "/healthz")
    assert status == 503
    assert json.loads(body)["checks"] == {"redis": "error: ConnectionError"}
    state["up"] = True
    assert request(app, "GET", "/healthz")[0] == 200
    assert run


def test_routes_errors_and_metrics(serve):
    app = server.App("test")
    app.route("POST", "/echo", lambda req: (201, req.json()))
    app.route("GET", "/boom", lambda req: 1 / 0)
    serve(app)
    assert request(app, "POST", "/echo", b'{"a": 1}')[:2] == (201, b'{"a":1}')
    assert request(app, "POST", "/echo", b"[1]")[0] == 400
    assert request(app, "POST", "/echo", b"{nope")[0] == 400
    assert request(app, "GET", "/echo")[0] == 405
    assert request(app, "GET", "/nowhere")[0] == 404
    assert request(app, "GET", "/boom")[:2] == (500, b'{"error":"internal error"}')
    assert request(app, "POST", "/echo", b"x" * 10, {"Content-Length": str(2 << 20)})[0] == 413
    # A request is counted after its response went out: the last one may still be on its way.
    deadline = time.monotonic() + 5
    while True:
        status, body, headers = request(app, "GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        text = body.decode()
        if 'route="/echo",le="+Inf"} 4' in text or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "# TYPE shopstream_http_requests_total counter" in text
    assert 'shopstream_http_requests_total{method="POST",route="/echo",status="201"} 1.0' in text
    assert 'shopstream_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'shopstream_http_request_duration_seconds_bucket{method="POST",route="/echo",le="+Inf"} 4' in text
    assert "shopstream_http_requests_in_flight" in text


def test_a_database_that_cannot_answer_is_a_503_with_retry_after(serve):
    """MariaDB restarting: pymysql's connection errors say "try again", not "internal error"."""
    lost = type("OperationalError", (Exception,), {"__module__": "pymysql.err"})
    wrong = type("ProgrammingError", (Exception,), {"__module__": "pymysql.err"})

    def raising(exc):
        def handler(req):
            raise exc

        return handler

    app = server.App("test")
    app.route("GET", "/lost", raising(lost(2013, "Lost connection to MySQL server")))
    app.route("GET", "/wrong", raising(wrong(1064, "You have an error in your SQL")))
    serve(app)
    status, body, headers = request(app, "GET", "/lost")
    assert (status, json.loads(body), headers["Retry-After"]) == (503, {"error": "unavailable for a moment"}, "5")
    assert "Lost connection" not in body.decode()
    assert request(app, "GET", "/wrong")[:2] == (500, b'{"error":"internal error"}')


@pytest.fixture
def root_logging():
    """The root logger's handlers and level, given back after the test: setup_logging's handler
    writes to the test's captured stdout, which later tests' server threads would log to, closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_access_log_is_json_without_query_string(capsys, root_logging):
    config.setup_logging("test")
    app = server.App("test")
    app.route("GET", "/x", lambda req: (200, {}))

    class Handler:
        command, path, client_address, headers = "GET", "/x?token=s3cr3t", ("10.0.0.9", 1), {}

        def send(self, *args):
            pass

    app.dispatch(Handler())
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["msg"] == "request" and line["service"] == "test" and line["status"] == 200
    assert line["path"] == "/x" and "s3cr3t" not in json.dumps(line)


def test_websocket_frames_round_trip():
    import io

    assert websocket.ws_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455, 1.3
    for size in (0, 5, 125, 126, 65535, 65536):
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        for mask in (False, True):
            frame = websocket.ws_encode(websocket.OP_TEXT, payload, mask=mask)
            assert websocket.ws_read(io.BytesIO(frame).read, max_size=1 << 20) == (websocket.OP_TEXT, payload)
    with pytest.raises(EOFError):
        websocket.ws_read(io.BytesIO(b"\x81").read)
    with pytest.raises(ValueError):
        websocket.ws_read(io.BytesIO(websocket.ws_encode(websocket.OP_TEXT, b"x" * 200)).read, max_size=100)
