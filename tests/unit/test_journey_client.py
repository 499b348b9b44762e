"""plugins/module_utils/_journey.py: RFC 6455 framing and handshake against a local socket server, the JSON
client, and the journey's step reporting against a fake platform (a real HTTP server on 127.0.0.1)."""

import base64
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils import _journey as j


def test_ws_accept_matches_the_rfc_example():
    # RFC 6455 section 1.3.
    assert j.ws_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("mask", [True, False])
def test_frames_round_trip_at_every_length_encoding(size, mask):
    payload = bytes(i % 251 for i in range(size))
    frame = j.encode_frame(j.OP_BINARY, payload, mask=mask)
    buf = bytearray(frame)

    def take(n):
        if len(buf) < n:
            raise EOFError
        data = bytes(buf[:n])
        del buf[:n]
        return data

    assert j.decode_frame(take) == (True, j.OP_BINARY, payload)
    assert not buf
    assert bool(frame[1] & 0x80) is mask
    header = 2 + (2 if 126 <= size < 65536 else 8 if size >= 65536 else 0)
    assert len(frame) == header + (4 if mask else 0) + size


def test_a_masked_frame_matches_the_rfc_example():
    # RFC 6455 section 5.7: a masked "Hello".
    frame = j.encode_frame(j.OP_TEXT, "Hello", key=bytes([0x37, 0xFA, 0x21, 0x3D]))
    assert frame == bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])


def test_decode_frame_raises_eof_on_a_truncated_frame():
    data = bytearray(j.encode_frame(j.OP_TEXT, "truncated", mask=False)[:-2])

    def take(n):
        if len(data) < n:
            raise EOFError("closed")
        out = bytes(data[:n])
        del data[:n]
        return out

    with pytest.raises(EOFError):
        j.decode_frame(take)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1", ("http", "127.0.0.1", 80, "")),
        ("http://127.0.0.1:8080/", ("http", "127.0.0.1", 8080, "")),
        ("https://shop.example.com/base/", ("https", "shop.example.com", 443, "/base")),
    ],
)
def test_split_url(url, expected):
    assert j.split_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://x", "127.0.0.1:80", "http://"])
def test_split_url_refuses_what_is_no_http_url(url):
    with pytest.raises(ValueError, match="not an http"):
        j.split_url(url)


class _WSServer:
    """A one-connection WebSocket server on a real socket: answers the handshake (right or wrong accept, or a
    status), records what the client sent, then runs `then(conn)`."""

    def __init__(self, status=101, wrong_accept=False, then=None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.request = b""
        self.received = []
        self.status, self.wrong_accept, self.then = status, wrong_accept, then
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _peer = self.sock.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(4096)
            headers = dict(line.split(": ", 1) for line in self.request.decode().split("\r\n")[1:] if ": " in line)
            if self.status != 101:
                conn.sendall(f"HTTP/1.1 {self.status} Nope\r\nContent-Length: 0\r\n\r\n".encode())
                return
            key = headers["Sec-WebSocket-Key"]
            accept = j.ws_accept("x" * 24 if self.wrong_accept else key)
            conn.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: bearer\r\n\r\n"
                ).encode()
            )
            if self.then:
                self.then(self, conn)

    def close(self):
        self.thread.join(timeout=5)
        self.sock.close()


def _read_client_frame(conn):
    buf = bytearray()

    def take(n):
        while len(buf) < n:
            chunk = conn.recv(4096)
            if not chunk:
                raise EOFError
            buf.extend(chunk)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    return j.decode_frame(take)


def test_handshake_sends_an_rfc_request_and_checks_the_accept():
    def then(server, conn):
        conn.sendall(j.encode_frame(j.OP_TEXT, '{"hello": 1}', mask=False))

    server = _WSServer(then=then)
    ws = j.WebSocket(server.address, "/api/notifications/ws", ["bearer", "tok"])
    try:
        assert ws.status == 101 and ws.headers["sec-websocket-protocol"] == "bearer"
        assert ws.receive(timeout=5) == (j.OP_TEXT, b'{"hello": 1}')
    finally:
        ws.close()
        server.close()
    lines = server.request.decode().split("\r\n")
    assert lines[0] == "GET /api/notifications/ws HTTP/1.1"
    assert "Upgrade: websocket" in lines and "Connection: Upgrade" in lines and "Sec-WebSocket-Version: 13" in lines
    assert "Sec-WebSocket-Protocol: bearer, tok" in lines
    key = next(line.split(": ")[1] for line in lines if line.startswith("Sec-WebSocket-Key: "))
    assert len(base64.b64decode(key)) == 16


def test_a_wrong_accept_is_refused():
    server = _WSServer(wrong_accept=True)
    try:
        with pytest.raises(ValueError, match="wrong Sec-WebSocket-Accept"):
            j.WebSocket(server.address, "/ws")
    finally:
        server.close()


def test_a_refused_upgrade_reports_its_status():
    server = _WSServer(status=401)
    ws = j.WebSocket(server.address, "/ws", ["bearer", "bad"])
    try:
        assert ws.status == 401
    finally:
        ws.close()
        server.close()


def test_pings_are_answered_with_a_masked_pong_and_skipped():
    def then(server, conn):
        conn.sendall(j.encode_frame(j.OP_PING, b"are you there", mask=False))
        server.received.append(_read_client_frame(conn))
        conn.sendall(j.encode_frame(j.OP_TEXT, b"after the ping", mask=False))

    server = _WSServer(then=then)
    ws = j.WebSocket(server.address, "/ws")
    try:
        assert ws.receive(timeout=5) == (j.OP_TEXT, b"after the ping")
    finally:
        ws.close()
        server.close()
    assert server.received == [(True, j.OP_PONG, b"are you there")]


def test_pings_do_not_extend_the_wait_for_data():
    stop = threading.Event()

    def then(server, conn):
        for _ping in range(25):  # 5 s of pings at most, so that a receive that waits for ever fails too
            if stop.wait(0.2):
                return
            conn.sendall(j.encode_frame(j.OP_PING, b"still here", mask=False))

    server = _WSServer(then=then)
    ws = j.WebSocket(server.address, "/ws")
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="no data frame within 1 s"):
            ws.receive(timeout=1)
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        ws.close()
        server.close()


def test_a_long_frame_split_across_reads():
    payload = json.dumps({"pad": "x" * 70000}).encode()

    def then(server, conn):
        frame = j.encode_frame(j.OP_TEXT, payload, mask=False)
        for i in range(0, len(frame), 999):
            conn.sendall(frame[i : i + 999])

    server = _WSServer(then=then)
    ws = j.WebSocket(server.address, "/ws")
    try:
        assert ws.receive(timeout=5) == (j.OP_TEXT, payload)
    finally:
        ws.close()
        server.close()


# --- the journey against a fake platform ----------------------------------------------------------


class _Platform(BaseHTTPRequestHandler):
    """Just enough of the gateway: login, products, orders, and the notification WebSocket."""

    protocol_version = "HTTP/1.1"

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.server.state
        state["requests"].append((self.path, self.headers.get("Authorization")))
        if self.path == "/api/auth/login":
            if state["limited"]:
                state["limited"] -= 1
                self.send_response(429)
                self.send_header("Retry-After", "7")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if body == {"username": "demo", "password": "right-password"}:
                return self._json(200, {"token": "tok", "token_type": "Bearer", "expires_in": 900})
            return self._json(401, {"error": "invalid username or password"})
        if self.path == "/api/products":
            state["products"].append(body)
            return self._json(201, dict(body, id=7))
        if self.path == "/api/orders":
            event = {"type": "order.created", "event_id": "ev1", "order": {"id": 3, "total_cents": 100}}
            if state["notify"] and state["ws"] is not None:
                state["ws"].sendall(j.encode_frame(j.OP_TEXT, json.dumps(dict(event, event_id="other")), mask=False))
                state["ws"].sendall(j.encode_frame(j.OP_TEXT, json.dumps(event), mask=False))
            return self._json(201, {"id": 3, "event_id": "ev1", "total_cents": 100, "user": "demo"})
        return self._json(404, {"error": "not found"})

    def do_GET(self):
        if self.path != "/api/notifications/ws":
            return self._json(404, {"error": "not found"})
        key = self.headers["Sec-WebSocket-Key"]
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", j.ws_accept(key))
        self.end_headers()
        self.wfile.flush()
        self.server.state["ws"] = self.connection
        self.server.state["ws_open"].wait(10)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def platform():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Platform)
    server.daemon_threads = True
    server.state = {"requests": [], "ws": None, "notify": True, "ws_open": threading.Event(), "limited": 0,
                    "products": []}  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.state["ws_open"].set()
    server.shutdown()
    server.server_close()


def test_the_journey_passes_every_step_and_never_returns_the_secrets(platform):
    client = j.Client(f"http://127.0.0.1:{platform.server_port}", timeout=5)
    result = j.run_journey(client, "demo", "right-password", product_name="mug")
    assert [s["step"] for s in result["steps"]] == [
        "login",
        "create product",
        "notification websocket",
        "place order",
        "notification",
    ]
    assert (result["product_id"], result["order_id"]) == (7, 3)
    assert result["steps"][-1]["type"] == "order.created"  # the matching event, not the other one
    assert "right-password" not in json.dumps(result) and "tok" not in json.dumps(result["steps"])
    assert platform.state["requests"][1:] == [("/api/products", "Bearer tok"), ("/api/orders", "Bearer tok")]


def test_the_journeys_product_is_kept_out_of_the_catalogue(platform):
    client = j.Client(f"http://127.0.0.1:{platform.server_port}", timeout=5)
    j.run_journey(client, "demo", "right-password")
    (created,) = platform.state["products"]
    assert created["listed"] is False and created["name"].startswith("verify-")


def test_a_login_refused_with_429_is_sent_again_after_retry_after(platform):
    """Shoppers behind the same address used up the login limit: the journey waits as asked."""
    platform.state["limited"] = 2
    slept = []
    client = j.Client(f"http://127.0.0.1:{platform.server_port}", timeout=5)
    result = j.run_journey(client, "demo", "right-password", sleep=slept.append)
    assert slept == [7, 7] and result["steps"][0]["rate_limited_for"] == 14
    assert "rate_limited_for" not in result["steps"][1]


def test_a_429_beyond_rate_limit_wait_fails_naming_it(platform):
    platform.state["limited"] = 5
    slept = []
    client = j.Client(f"http://127.0.0.1:{platform.server_port}", timeout=5)
    with pytest.raises(j.JourneyError, match=r"login: HTTP 429 \(rate limited\) after 14 s of waiting") as exc:
        j.run_journey(client, "demo", "right-password", rate_limit_wait=20, sleep=slept.append)
    assert slept == [7, 7] and exc.value.step == "login"


@pytest.mark.parametrize("value, seconds", [("12", 12), ("0", 1), ("Wed, 21 Oct 2015 07:28:00 GMT", 5), (None, 5)])
def test_retry_after_reads_seconds(value, seconds):
    assert j.retry_after({} if value is None else {"Retry-After": value}) == seconds


def test_a_wrong_password_fails_at_login(platform):
    client = j.Client(f"http://127.0.0.1:{platform.server_port}", timeout=5)
    with pytest.raises(j.JourneyError, match="login: HTTP 401 instead of 200 .invalid username or password.") as exc:
        j.run_journey(client, "demo", "wrong")
    assert exc.value.step == "login"


def test_a_missing_notification_fails_at_notification(platform):
    platform.state["notify"] = False
    client = j.Client(f"http://127.0.0.1:{platform.server_port}", timeout=5)
    with pytest.raises(j.JourneyError, match="no notification of order 3") as exc:
        j.run_journey(client, "demo", "right-password", ws_timeout=1)
    assert exc.value.step == "notification"


def test_nothing_listening_fails_at_login():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(j.JourneyError, match="^login: ConnectionRefusedError") as exc:
        j.run_journey(j.Client(f"http://127.0.0.1:{port}", timeout=2), "demo", "x")
    assert exc.value.step == "login"


def test_frame_lengths_use_network_byte_order():
    frame = j.encode_frame(j.OP_TEXT, b"a" * 300, mask=False)
    assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == 300
