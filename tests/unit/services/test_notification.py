"""notification in-process, over a fake pika: an event from the queue reaches its user's WebSocket; pings are
answered; a bad event is dropped (nack); SIGTERM closes the socket with 1001 and the service exits 0."""

import base64
import json
import os
import queue
import socket
import sys
import threading
import types

import pytest
from shopstream import events, tokens, websocket

KEY = "n" * 40
ORDER = {
    "id": 7,
    "user": "demo",
    "status": "confirmed",
    "total_cents": 500,
    "items": [{"product_id": 1, "quantity": 1}],
}


@pytest.fixture
def broker(monkeypatch, secrets_dir):
    """A fake pika whose channel.consume() yields what the test puts in broker.messages."""
    (secrets_dir / "rabbitmq_password").write_text("pw")
    (secrets_dir / "jwt_signing_key").write_text(KEY)
    messages, acks = queue.Queue(), []

    class Channel:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

        def basic_ack(self, tag):
            acks.append(("ack", tag))

        def basic_nack(self, tag, requeue=True):
            acks.append(("nack", tag, requeue))

        def consume(self, queue_name, inactivity_timeout=None):
            assert queue_name == events.NOTIFICATION_QUEUE
            tag = 0
            while True:
                try:
                    body = messages.get(timeout=inactivity_timeout)
                except queue.Empty:
                    yield None, None, None
                    continue
                tag += 1
                yield types.SimpleNamespace(delivery_tag=tag), None, body

    class Connection:
        is_open = True

        def __init__(self, params):
            pass

        def channel(self):
            return Channel()

        def close(self):
            pass

    fake = types.SimpleNamespace(
        BlockingConnection=Connection,
        ConnectionParameters=lambda **kw: kw,
        PlainCredentials=lambda user, password: (user, password),
        exceptions=types.SimpleNamespace(AMQPError=Exception),
    )
    monkeypatch.setitem(sys.modules, "pika", fake)
    return types.SimpleNamespace(messages=messages, acks=acks)


def ws_connect(address, user):
    """A WebSocket as the gateway opens it: the user's token in Authorization."""
    sock = socket.create_connection(address, timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    token = tokens.issue_jwt(KEY, user, 600)
    sock.sendall(
        (
            "GET /api/notifications/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert websocket.ws_accept(key).encode() in head
    reader = sock.makefile("rb")
    return sock, reader


def test_event_to_websocket_ping_and_drain(broker):
    from shopstream import notification

    app = notification.build()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", app.run("127.0.0.1", 0, False)), daemon=True)
    thread.start()
    assert app.listening.wait(5) and app.ready.wait(5)
    sock, reader = ws_connect(app.address, "demo")
    other, other_reader = ws_connect(app.address, "someone-else")

    broker.messages.put(b"garbage")
    event = events.make_order_event(ORDER)
    broker.messages.put(json.dumps(event).encode())
    opcode, payload = websocket.ws_read(reader.read)
    assert opcode == websocket.OP_TEXT
    pushed = json.loads(payload)
    assert pushed["event_id"] == event["id"] and pushed["order"]["id"] == 7

    sock.sendall(websocket.ws_encode(websocket.OP_PING, b"hi", mask=True))
    assert websocket.ws_read(reader.read) == (websocket.OP_PONG, b"hi")
    assert broker.acks[:2] == [("nack", 1, False), ("ack", 2)]

    app.stopping.set()  # SIGTERM
    opcode, payload = websocket.ws_read(reader.read)
    assert opcode == websocket.OP_CLOSE and payload[:2] == (1001).to_bytes(2, "big")
    opcode, _payload = websocket.ws_read(other_reader.read)
    assert opcode == websocket.OP_CLOSE  # the other user got no notification, only the close
    thread.join(10)
    assert result["rc"] == 0
    sock.close()
    other.close()


@pytest.mark.parametrize(
    "credential",
    ["", "X-Shopstream-User: demo\r\n", f"Authorization: Bearer {tokens.issue_jwt('x' * 40, 'demo', 600)}\r\n"],
    ids=["none", "identity-header", "token-of-another-key"],
)
def test_websocket_needs_a_token_it_verifies_itself(broker, credential):
    from shopstream import notification

    app = notification.build()
    thread = threading.Thread(target=app.run, args=("127.0.0.1", 0, False), daemon=True)
    thread.start()
    assert app.listening.wait(5)
    sock = socket.create_connection(app.address, timeout=5)
    sock.sendall(
        b"GET /api/notifications/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + credential.encode() + b"\r\n"
    )
    assert sock.recv(100).startswith(b"HTTP/1.1 401")
    sock.close()
    app.stopping.set()
    thread.join(10)
    app.stopping.set()
    thread.join(10)
