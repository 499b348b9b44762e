# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ShopStream user journey as a client sees it: login, create a product, place an order, and the
order's notification over a WebSocket. Standard library only, so that it runs on any managed node.

The WebSocket client is written against RFC 6455, independently of the services' own framing code.
"""

import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import time
from urllib.parse import urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class JourneyError(Exception):
    """A step of the journey failed; `step` names it."""

    def __init__(self, step, message):
        super().__init__(f"{step}: {message}")
        self.step = step


def ws_accept(key):
    """The Sec-WebSocket-Accept a server must answer to a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")  # noqa: S324


def encode_frame(opcode, payload=b"", mask=True, key=None):
    """One final frame. Clients mask (RFC 6455 5.3); `key` fixes the mask for tests."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = key or os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def decode_frame(take):
    """(fin, opcode, payload) of the next frame; take(n) returns exactly n bytes or raises EOFError."""
    b0, b1 = take(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", take(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", take(8))[0]
    key = take(4) if b1 & 0x80 else None
    payload = take(n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bool(b0 & 0x80), b0 & 0x0F, payload


def split_url(url):
    """(scheme, host, port, base path) of an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


class WebSocket:
    """A client WebSocket. After the constructor, `status` and `headers` hold the handshake's answer;
    a 101 whose Sec-WebSocket-Accept is wrong raises ValueError."""

    def __init__(self, address, path, protocols=(), timeout=10, tls=None, host=None):
        self.sock = socket.create_connection(tuple(address), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host or address[0])
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host or address[0]}:{address[1]}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if protocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buffer += chunk
        head, _separator, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            self.status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            self.sock.close()
            raise ValueError(f"not an HTTP answer to the WebSocket handshake: {lines[0][:80]!r}") from None
        self.headers = {k.strip().lower(): v.strip() for k, _colon, v in (x.partition(":") for x in lines[1:])}
        if self.status == 101 and self.headers.get("sec-websocket-accept") != ws_accept(key):
            self.sock.close()
            raise ValueError("the server answered the WebSocket handshake with a wrong Sec-WebSocket-Accept")

    def _take(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, opcode, payload=b""):
        self.sock.sendall(encode_frame(opcode, payload, mask=True))

    def receive(self, timeout=15):
        """(opcode, payload) of the next data or close frame within `timeout` seconds; pings are
        answered, pongs skipped (a server that pings more often than that never extends it)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout(f"no data frame within {timeout} s")
            self.sock.settimeout(remaining)
            try:
                _fin, opcode, payload = decode_frame(self._take)
            except socket.timeout:
                raise socket.timeout(f"no data frame within {timeout} s") from None
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode != OP_PONG:
                return opcode, payload

    def close(self):
        self.sock.close()


class Client:
    """JSON over HTTP(S) to one base URL (Traefik, or the gateway directly)."""

    def __init__(self, url, timeout=30, validate_certs=True, ca_certificate=None):
        self.scheme, self.host, self.port, self.base = split_url(url)
        self.timeout = timeout
        self.tls = None
        if self.scheme == "https":
            # With ca_certificate (PEM), the server must present a certificate of that CA (a
            # platform's private CA); without, one the system trusts.
            self.tls = ssl.create_default_context(cadata=ca_certificate or None)
            if not validate_certs:
                self.tls.check_hostname = False
                self.tls.verify_mode = ssl.CERT_NONE

    def call(self, method, path, body=None, token=None, headers=None):
        """(status, parsed JSON or None, headers) of one request."""
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if body is not None:
            hdrs["Content-Type"] = "application/json"
            body = json.dumps(body)
        try:
            conn.request(method, self.base + path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            try:
                parsed = json.loads(data) if data else None
            except ValueError:
                parsed = {"text": data[:200].decode("utf-8", "replace")}
            return resp.status, parsed, resp.headers
        finally:
            conn.close()

    def page(self, path):
        """What a browser gets for ``path``: status, headers (lower-case names) and the body's first 200 characters."""
        if self.tls is not None:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.base + path, headers={"Accept": "text/html,application/json,*/*"})
            resp = conn.getresponse()
            body = resp.read(200).decode("utf-8", "replace")
            return {
                "path": path,
                "status": resp.status,
                "headers": {name.lower(): value for name, value in resp.getheaders()},
                "body": body,
            }
        finally:
            conn.close()

    def websocket(self, path, protocols=()):
        return WebSocket((self.host, self.port), self.base + path, protocols, self.timeout, self.tls, self.host)


def _expect(step, status, body, wanted):
    if status != wanted:
        detail = (body or {}).get("error") if isinstance(body, dict) else None
        raise JourneyError(step, f"HTTP {status} instead of {wanted}" + (f" ({detail})" if detail else ""))


def retry_after(headers, default=5):
    """Seconds a 429 asks to wait (its Retry-After in seconds), at least 1."""
    value = (headers.get("Retry-After") if headers is not None else None) or ""
    return max(1, int(value)) if value.strip().isdigit() else default


def run_journey(client, username, password, product_name=None, ws_timeout=20, rate_limit_wait=90, sleep=time.sleep):
    """Log in, create a product (unlisted: shoppers never see it in the catalogue), open the notification
    WebSocket, place an order, and wait for its notification. Returns what was proven, without the password
    or the token; raises JourneyError.

    A request refused with 429 (shoppers from the same address used up the login limit) is sent again
    after its Retry-After, for at most ``rate_limit_wait`` seconds in all; the step records the wait."""
    steps = []
    started = time.monotonic()
    waited = {"seconds": 0}

    def done(step, **facts):
        if waited["seconds"]:
            facts["rate_limited_for"], waited["seconds"] = waited["seconds"], 0
        steps.append(dict(step=step, seconds=round(time.monotonic() - started, 3), **facts))

    def call(step, *args):
        spent = 0
        while True:
            status, body, headers = client.call(*args)
            if status != 429:
                return status, body, headers
            wait = retry_after(headers)
            if spent + wait > rate_limit_wait:
                raise JourneyError(
                    step,
                    f"HTTP 429 (rate limited) after {spent} s of waiting; Retry-After asks {wait} s more, beyond "
                    f"rate_limit_wait ({rate_limit_wait} s)",
                )
            sleep(wait)
            spent += wait
            waited["seconds"] += wait

    try:
        status, body, _headers = call("login", "POST", "/api/auth/login", {"username": username, "password": password})
        _expect("login", status, body, 200)
        token = body.get("token")
        if not token:
            raise JourneyError("login", "the answer carries no token")
        done("login", status=status, user=username)

        name = product_name or f"verify-{int(time.time())}"
        status, product, _headers = call(
            "create product",
            "POST",
            "/api/products",
            {"name": name, "price_cents": 100, "stock": 1000000, "listed": False},
            token,
        )
        _expect("create product", status, product, 201)
        done("create product", status=status, product_id=product.get("id"))

        try:
            ws = client.websocket("/api/notifications/ws", ["bearer", token])
        except ValueError as exc:
            raise JourneyError("notification websocket", str(exc)) from None
        try:
            if ws.status != 101:
                raise JourneyError("notification websocket", f"HTTP {ws.status} instead of 101 Switching Protocols")
            done("notification websocket", status=ws.status)
            time.sleep(0.5)  # let notification register the socket before the event is published
            status, order, _headers = call(
                "place order", "POST", "/api/orders", {"items": [{"product_id": product["id"], "quantity": 1}]}, token
            )
            _expect("place order", status, order, 201)
            done("place order", status=status, order_id=order.get("id"), event_id=order.get("event_id"))

            deadline = time.monotonic() + ws_timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JourneyError("notification", f"no notification of order {order.get('id')} in {ws_timeout} s")
                try:
                    opcode, payload = ws.receive(timeout=left)
                except (socket.timeout, EOFError) as exc:
                    raise JourneyError("notification", f"no notification of order {order.get('id')}: {exc}") from None
                if opcode == OP_CLOSE:
                    raise JourneyError("notification", "the server closed the WebSocket before the notification")
                if opcode != OP_TEXT:
                    continue
                message = json.loads(payload)
                if message.get("event_id") == order.get("event_id"):
                    done("notification", type=message.get("type"), order_id=(message.get("order") or {}).get("id"))
                    break
        finally:
            ws.close()
    except (OSError, http.client.HTTPException) as exc:
        order_of = ("login", "create product", "notification websocket", "place order", "notification")
        raise JourneyError(order_of[min(len(steps), 4)], f"{type(exc).__name__}: {exc}") from None
    return {
        "steps": steps,
        "product_id": product.get("id"),
        "order_id": order.get("id"),
        "seconds": steps[-1]["seconds"],
    }
