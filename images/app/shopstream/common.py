"""Code shared by the ShopStream services: configuration and secrets, JSON logging, Prometheus metrics,
HS256 JWTs and who is asking (every service verifies the caller's token itself), password hashing, the Redis
rate limiter, the order event, WebSocket framing, and a small threaded HTTP server that drains in-flight
requests on SIGTERM.

Only the standard library is imported here; pymysql, redis and pika are imported where a connection
is made, so that the unit tests run without them.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import signal
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger("shopstream")
MAX_BODY = 1 << 20


class ConfigError(Exception):
    """A configuration or secret problem that must stop the service at startup."""


# --- configuration and secrets -------------------------------------------------------------------


def env(name, default):
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_int(name, default, minimum=0):
    raw = env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below its minimum {minimum}")
    return value


def secrets_dir():
    return os.path.realpath(env("SHOPSTREAM_SECRETS_DIR", "/run/secrets"))


def secret_path(env_var, default_name):
    """The file a secret is read from: $env_var (absolute, or a name under the secrets directory)."""
    name = env(env_var, default_name)
    base = secrets_dir()
    path = os.path.realpath(name if os.path.isabs(name) else os.path.join(base, name))
    if os.path.commonpath([base, path]) != base:
        raise ConfigError(f"{env_var}={name!r} is outside {base}: credentials are read only from there")
    return path


def read_secret(env_var, default_name, required=True, min_length=1):
    """A secret's value from its file (one trailing newline dropped); None if optional and absent.

    The error names the variable and the file, never the content.
    """
    path = secret_path(env_var, default_name)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if not required:
            return None
        raise ConfigError(f"required secret file {path} is missing (set {env_var} to its name or path)") from None
    except PermissionError:
        raise ConfigError(f"secret file {path} ({env_var}) is not readable by uid {os.getuid()}") from None
    except IsADirectoryError:
        raise ConfigError(f"secret file {path} ({env_var}) is a directory") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} ({env_var}) is not UTF-8 text") from None
    if len(value) < min_length:
        raise ConfigError(f"secret file {path} ({env_var}) is shorter than {min_length} characters")
    return value


# --- JSON logging --------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self, service):
        super().__init__()
        self.service = service

    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self.RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def setup_logging(service):
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(env("LOG_LEVEL", "INFO").upper())
    logging.getLogger("pika").setLevel(logging.WARNING)


# --- Prometheus metrics --------------------------------------------------------------------------

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(pairs):
    if not pairs:
        return ""
    text = ",".join(
        '{}="{}"'.format(k, str(v).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")) for k, v in pairs
    )
    return "{" + text + "}"


class Metrics:
    """Counters, gauges and histograms, rendered in the Prometheus text format 0.0.4."""

    def __init__(self):
        self._lock = threading.Lock()
        self._meta = {}  # name -> (type, help)
        self._values = {}  # (name, labels) -> float or histogram [bucket counts..., sum, count]
        self._gauge_fns = {}

    def _declare(self, name, kind, help_text):
        self._meta.setdefault(name, (kind, help_text))

    def inc(self, name, help_text, amount=1.0, **labels):
        self._declare(name, "counter", help_text)
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name, help_text, value, **labels):
        self._declare(name, "gauge", help_text)
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = float(value)

    def gauge_fn(self, name, help_text, fn):
        self._declare(name, "gauge", help_text)
        self._gauge_fns[name] = fn

    def observe(self, name, help_text, value, **labels):
        self._declare(name, "histogram", help_text)
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            hist = self._values.setdefault(key, [0] * len(BUCKETS) + [0.0, 0])
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    hist[i] += 1
            hist[-2] += value
            hist[-1] += 1

    def render(self):
        lines = []
        with self._lock:
            values = {k: (list(v) if isinstance(v, list) else v) for k, v in self._values.items()}
        for name, (kind, help_text) in sorted(self._meta.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            if name in self._gauge_fns:
                lines.append(f"{name} {float(self._gauge_fns[name]())}")
            for (vname, labels), value in sorted(values.items()):
                if vname != name:
                    continue
                if kind != "histogram":
                    lines.append(f"{name}{_labels(labels)} {value}")
                    continue
                for bound, count in zip(BUCKETS, value[: len(BUCKETS)]):
                    lines.append(f"{name}_bucket{_labels(labels + (('le', repr(bound)),))} {count}")
                lines.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {value[-1]}")
                lines.append(f"{name}_sum{_labels(labels)} {value[-2]}")
                lines.append(f"{name}_count{_labels(labels)} {value[-1]}")
        return "\n".join(lines) + "\n"


# --- JWT (HS256 only) ----------------------------------------------------------------------------

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class JWTError(Exception):
    pass


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise JWTError("malformed base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key, signing_input):
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def _as_key(key):
    return key.encode("utf-8") if isinstance(key, str) else key


def issue_jwt(key, subject, ttl, issuer="shopstream-auth", now=None, extra=None):
    now = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": subject, "iat": now, "exp": now + int(ttl), "iss": issuer, "jti": uuid.uuid4().hex}
    claims.update(extra or {})
    signing_input = ".".join(b64url_encode(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims))
    return signing_input + "." + b64url_encode(_sign(_as_key(key), signing_input.encode("ascii")))


def verify_jwt(token, keys, issuer="shopstream-auth", now=None, leeway=30):
    """The claims of a valid HS256 token signed by one of keys; JWTError otherwise.

    The algorithm is fixed: a header naming anything but HS256 (none, RS256, ...) is rejected before any
    signature check, so a token cannot choose how it is verified.
    """
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        raise JWTError("malformed token")
    head_b64, body_b64, sig_b64 = token.split(".")
    try:
        header = json.loads(b64url_decode(head_b64))
    except ValueError:
        raise JWTError("malformed header") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise JWTError("unsupported algorithm")
    if header.get("typ", "JWT") != "JWT" or "crit" in header:
        raise JWTError("unsupported header")
    signature = b64url_decode(sig_b64)
    signing_input = f"{head_b64}.{body_b64}".encode("ascii")
    if not any(hmac.compare_digest(_sign(_as_key(k), signing_input), signature) for k in keys if k):
        raise JWTError("bad signature")
    try:
        claims = json.loads(b64url_decode(body_b64))
    except ValueError:
        raise JWTError("malformed claims") from None
    if not isinstance(claims, dict):
        raise JWTError("malformed claims")
    now = time.time() if now is None else now
    for name in ("exp", "iat"):
        if not isinstance(claims.get(name), (int, float)) or isinstance(claims.get(name), bool):
            raise JWTError(f"missing or invalid {name}")
    if now >= claims["exp"] + leeway:
        raise JWTError("token expired")
    if claims["iat"] > now + leeway or ("nbf" in claims and claims["nbf"] > now + leeway):
        raise JWTError("token not yet valid")
    if issuer and claims.get("iss") != issuer:
        raise JWTError("wrong issuer")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or not sub.isprintable():
        raise JWTError("missing or invalid subject")
    return claims


def bearer_token(headers):
    """(token, via_subprotocol): from Authorization, or from a WebSocket offering the protocols "bearer, TOKEN"
    (browsers cannot set headers on a WebSocket; a query string would end up in access logs)."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), False
    offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == "bearer":
        return offered[1], True
    return None, False


def jwt_keys():
    """The keys a token may be signed with: the current one, and the one before the last rotation."""
    keys = [read_secret("JWT_SIGNING_KEY_FILE", "jwt_signing_key", min_length=32)]
    previous = read_secret("JWT_PREVIOUS_SIGNING_KEY_FILE", "jwt_previous_signing_key", required=False)
    if previous:  # accepted during a key rotation, never used to sign
        keys.append(previous)
    return keys


def token_verifier(keys=None, issuer=None):
    """A function: token -> verified claims (JWTError otherwise), over jwt_keys() and $JWT_ISSUER by default.

    No service takes an identity from a header: the gateway forwards the caller's own token and every
    service behind it verifies it again, so a request from inside the backend network names a user only
    with a token auth signed."""
    keys = jwt_keys() if keys is None else list(keys)
    issuer = env("JWT_ISSUER", "shopstream-auth") if issuer is None else issuer
    return lambda token: verify_jwt(token, keys, issuer=issuer)


# --- passwords -----------------------------------------------------------------------------------

PBKDF2_ITERATIONS = 120_000


def hash_password(password, salt=None, iterations=PBKDF2_ITERATIONS):
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${b64url_encode(salt)}${b64url_encode(digest)}"


def verify_password(password, encoded):
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), b64url_decode(salt), int(iterations))
        return hmac.compare_digest(expected, b64url_decode(digest))
    except (ValueError, JWTError):
        return False


# --- rate limiter --------------------------------------------------------------------------------


class RateLimiter:
    """Fixed-window counter per client in Redis: INCR and EXPIRE in one MULTI per request.

    check() returns (allowed, remaining, retry_after_seconds).
    """

    def __init__(self, redis, limit, window, prefix="shopstream:ratelimit", clock=time.time):
        self.redis, self.limit, self.window, self.prefix, self.clock = redis, limit, window, prefix, clock

    def check(self, client, bucket="api"):
        now = self.clock()
        window_start = int(now // self.window) * self.window
        key = f"{self.prefix}:{bucket}:{client}:{window_start}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.window + 1)
        count = int(pipe.execute()[0])
        retry_after = max(1, int(window_start + self.window - now + 0.999))
        return count <= self.limit, max(0, self.limit - count), retry_after


class LocalRateLimiter:
    """The same fixed windows counted in this process alone, while Redis cannot count: each replica
    then allows the limit on its own (the limit times the replicas, still a limit)."""

    def __init__(self, limit, window, clock=time.time):
        self.limit, self.window, self.clock = limit, window, clock
        self.lock = threading.Lock()
        self.counts, self.window_start = {}, None

    def check(self, client, bucket="api"):
        now = self.clock()
        window_start = int(now // self.window) * self.window
        with self.lock:
            if window_start != self.window_start:
                self.counts, self.window_start = {}, window_start
            count = self.counts[(bucket, client)] = self.counts.get((bucket, client), 0) + 1
        retry_after = max(1, int(window_start + self.window - now + 0.999))
        return count <= self.limit, max(0, self.limit - count), retry_after


# --- order events --------------------------------------------------------------------------------

ORDER_EXCHANGE = "shopstream.orders"
ORDER_CREATED = "order.created"
NOTIFICATION_QUEUE = "shopstream.notification.orders"


class EventError(ValueError):
    pass


def make_order_event(order, now=None):
    """The event order publishes to ORDER_EXCHANGE with routing key ORDER_CREATED."""
    now = time.time() if now is None else now
    return {
        "type": ORDER_CREATED,
        "version": 1,
        "id": uuid.uuid4().hex,
        "occurred_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
        "user": order["user"],
        "order": {
            "id": order["id"],
            "status": order["status"],
            "total_cents": order["total_cents"],
            "items": [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in order["items"]],
        },
    }


def parse_order_event(body):
    """An event published by make_order_event, checked; EventError for anything else."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EventError("event is not JSON") from None
    if not isinstance(event, dict) or event.get("type") != ORDER_CREATED or event.get("version") != 1:
        raise EventError("not an order.created v1 event")
    order = event.get("order")
    if not isinstance(event.get("user"), str) or not isinstance(order, dict):
        raise EventError("event lacks user or order")
    if not isinstance(order.get("id"), int) or not isinstance(order.get("total_cents"), int):
        raise EventError("order lacks id or total")
    if not isinstance(order.get("items"), list):
        raise EventError("order lacks items")
    return event


def declare_order_topology(channel):
    """Exchange, queue and binding, declared by both order and notification (idempotent), so that no
    event is lost whichever starts first."""
    channel.exchange_declare(exchange=ORDER_EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(queue=NOTIFICATION_QUEUE, durable=True)
    channel.queue_bind(queue=NOTIFICATION_QUEUE, exchange=ORDER_EXCHANGE, routing_key=ORDER_CREATED)


# --- WebSocket framing (RFC 6455) ----------------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")  # noqa: S324


def ws_encode(opcode, payload=b"", mask=False):
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
    if mask:
        key = secrets.token_bytes(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def ws_read(read, max_size=1 << 16):
    """(opcode, payload) of the next frame; read(n) returns exactly n bytes or fewer at EOF."""

    def exact(n):
        data = read(n)
        if len(data) != n:
            raise EOFError("connection closed")
        return data

    first, second = exact(2)
    opcode, n = first & 0x0F, second & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    if n > max_size:
        raise ValueError("frame too large")
    key = exact(4) if second & 0x80 else None
    payload = exact(n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload


# --- HTTP server with drain ----------------------------------------------------------------------


# MariaDB restarting, or a connection lost: the request is answered 503 with this Retry-After, not
# 500; the client may send it again. Told apart by the client library's exception classes.
UNAVAILABLE_ERRORS = {("pymysql.err", "OperationalError"), ("pymysql.err", "InterfaceError")}
UNAVAILABLE_RETRY_AFTER = "5"


def unavailable(exc):
    """Whether ``exc`` says a dependency cannot answer now (rather than that the service is wrong)."""
    return (type(exc).__module__, type(exc).__name__) in UNAVAILABLE_ERRORS


class HTTPError(Exception):
    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Request:
    def __init__(self, handler, params):
        self.handler = handler
        self.method = handler.command
        split = urllib.parse.urlsplit(handler.path)
        self.path, self.raw_query = split.path, split.query
        self.query = dict(urllib.parse.parse_qsl(split.query))
        self.headers = handler.headers
        self.params = params
        self.client = handler.client_address[0]
        self.user = self.token = None  # set by App.dispatch on routes that need a verified caller
        self._body = None

    def body(self):
        if self._body is None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                raise HTTPError(411, "a Content-Length is required")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise HTTPError(413, "request body too large")
            self._body = self.handler.rfile.read(length) if length else b""
        return self._body

    def json(self):
        try:
            data = json.loads(self.body() or b"null")
        except ValueError:
            raise HTTPError(400, "body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "body must be a JSON object")
        return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "shopstream"
    sys_version = ""
    timeout = 30

    def log_message(self, format, *args):  # noqa: A002 - the access log below replaces http.server's stderr lines
        pass

    def do_GET(self):  # noqa: N802
        self.server.app.dispatch(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send(self, status, body, headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128


class App:
    """Routes, /healthz, /metrics, access logs and the SIGTERM drain shared by every service."""

    def __init__(self, service, verify_token=None):
        self.service = service
        self.routes = []  # (method, compiled regex, route label, handler, needs a verified caller)
        self.verify_token = verify_token  # token -> claims, for routes added with user=True
        self.metrics = Metrics()
        self.health_checks = {}  # name -> callable raising on failure
        # Dependencies the service works on without (in a degraded way): reported, never a 503.
        self.optional_checks = {}
        self.stopping = threading.Event()
        self.draining = False
        self.listening = threading.Event()
        self.address = None
        self.ready = threading.Event()  # set once startup work (schema, topology) is done
        self.on_stop = []  # called after the last request finished
        # Seconds to keep serving (with /healthz 503) before closing the listener, then to wait for requests.
        self.drain_delay = env_int("DRAIN_DELAY_SECONDS", 0)
        self.drain_timeout = env_int("DRAIN_TIMEOUT_SECONDS", 20)
        self._inflight = 0
        self._cond = threading.Condition()
        self.metrics.gauge_fn("shopstream_http_requests_in_flight", "Requests being served.", lambda: self._inflight)
        self.route("GET", "/healthz", self.healthz)
        self.route(
            "GET", "/metrics", lambda req: (200, self.metrics.render(), {"Content-Type": "text/plain; version=0.0.4"})
        )

    def route(self, method, pattern, handler, label=None, user=False):
        """user=True: the handler runs only for a caller with a valid bearer token (req.user, req.token), else 401."""
        if user and self.verify_token is None:
            raise ValueError(f"{self.service}: a route that needs a verified caller needs a token verifier")
        self.routes.append((method, re.compile(f"^{pattern}$"), label or pattern, handler, user))

    def authenticate(self, req):
        token = bearer_token(req.headers)[0]
        reason = "no token"
        if token:
            try:
                claims = self.verify_token(token)
                req.user, req.token = claims["sub"], token
                return
            except JWTError as exc:
                reason = str(exc)
        self.metrics.inc("shopstream_auth_failures_total", "Requests refused with 401 (no valid token).")
        LOG.info("unauthorized", extra={"path": req.path, "reason": reason, "client": req.client})
        raise HTTPError(401, "a valid bearer token is required", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def healthz(self, req):
        if self.draining:
            return 503, {"status": "draining"}
        if not self.ready.is_set():
            return 503, {"status": "starting"}
        checks, failed = {}, set()
        for name, check in [*self.health_checks.items(), *self.optional_checks.items()]:
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure makes the dependency unhealthy
                checks[name] = f"error: {type(exc).__name__}"
                failed.add(name)
        if failed & set(self.health_checks):
            return 503, {"status": "unhealthy", "checks": checks}
        return 200, {"status": "degraded" if failed else "ok", "checks": checks}

    def dispatch(self, handler):
        start = time.monotonic()
        path = urllib.parse.urlsplit(handler.path).path
        label, status = "unmatched", 500
        with self._cond:
            self._inflight += 1
        try:
            allowed = []
            for method, regex, rlabel, fn, needs_user in self.routes:
                match = regex.match(path)
                if match and method in (handler.command, "*"):
                    label = rlabel
                    req = Request(handler, match.groupdict())
                    if needs_user:
                        self.authenticate(req)
                    result = fn(req)
                    break
                if match:
                    allowed.append(method)
            else:
                result = (405, {"error": "method not allowed"}) if allowed else (404, {"error": "not found"})
            if result is None:  # the handler took over the connection (WebSocket)
                status = 101
            else:
                status, body, headers = (tuple(result) + (None,))[:3]
                handler.send(status, body, headers)
        except HTTPError as exc:
            status = exc.status
            handler.send(status, {"error": exc.message}, exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            status = 499
        except Exception as exc:
            if unavailable(exc):
                LOG.warning("dependency unavailable", extra={"path": path, "error": type(exc).__name__})
                status = 503
                body, headers = {"error": "unavailable for a moment"}, {"Retry-After": UNAVAILABLE_RETRY_AFTER}
            else:
                LOG.exception("unhandled error", extra={"path": path, "method": handler.command})
                status, body, headers = 500, {"error": "internal error"}, None
            with contextlib.suppress(OSError):
                handler.send(status, body, headers)
        finally:
            elapsed = time.monotonic() - start
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()
            self.metrics.inc(
                "shopstream_http_requests_total",
                "HTTP requests served.",
                method=handler.command,
                route=label,
                status=str(status),
            )
            self.metrics.observe(
                "shopstream_http_request_duration_seconds",
                "HTTP request latency.",
                elapsed,
                method=handler.command,
                route=label,
            )
            if label not in ("/healthz", "/metrics"):  # path only: a query string may carry a credential
                LOG.info(
                    "request",
                    extra={
                        "method": handler.command,
                        "path": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                        "client": handler.client_address[0],
                    },
                )

    def run(self, host="0.0.0.0", port=8080, install_signals=True):  # noqa: S104 - all of a container's interfaces
        """Serve until SIGTERM/SIGINT (or self.stopping), then drain; 0 when no request was abandoned."""
        server = _Server((host, port), _Handler)
        server.app = self
        self.address = server.server_address
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, frame: self.stopping.set())
        self.listening.set()
        LOG.info("listening", extra={"port": port})
        self.stopping.wait()
        delay, timeout = self.drain_delay, self.drain_timeout
        LOG.info("draining", extra={"in_flight": self._inflight, "delay_s": delay, "timeout_s": timeout})
        self.draining = True  # /healthz answers 503 from now on
        time.sleep(delay)
        server.shutdown()  # no new connections
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._inflight and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            left = self._inflight
        server.server_close()
        for hook in self.on_stop:
            try:
                hook()
            except Exception:  # noqa: BLE001 - closing a connection must not change the exit status
                LOG.warning("error while closing", exc_info=True)
        LOG.info("stopped", extra={"abandoned_requests": left})
        return 0 if left == 0 else 1


def retry_forever(what, fn, stop, max_delay=10.0):
    """Call fn until it succeeds or stop is set, logging failures with a capped backoff."""
    delay = 0.5
    while not stop.is_set():
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a dependency that is not up yet
            LOG.warning("%s failed, retrying", what, extra={"error": f"{type(exc).__name__}: {exc}", "retry_s": delay})
            stop.wait(delay)
            delay = min(max_delay, delay * 2)
    return None


# --- clients for MariaDB, Redis, RabbitMQ --------------------------------------------------------


def mysql_config():
    password = read_secret("DB_PASSWORD_FILE", "db_password")
    return {
        "host": env("DB_HOST", "mariadb"),
        "port": env_int("DB_PORT", 3306, 1),
        "user": credential_user(env("DB_USER", "shopstream"), password),
        "password": password,
        "database": env("DB_NAME", "shopstream"),
    }


def mysql_connect(cfg):
    import pymysql

    return pymysql.connect(
        **cfg,
        connect_timeout=5,
        read_timeout=10,
        write_timeout=10,
        autocommit=False,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )


def mysql_ping(cfg):
    conn = mysql_connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


def redis_client():
    import redis

    return redis.Redis(
        host=env("REDIS_HOST", "redis"),
        port=env_int("REDIS_PORT", 6379, 1),
        username=env("REDIS_USERNAME", "") or None,
        password=read_secret("REDIS_PASSWORD_FILE", "redis_password"),
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


def credential_user(prefix, password):
    """The MariaDB or RabbitMQ user of a password: ``<prefix>-<first 8 hex digits of its SHA-256>``.
    Each password is a user of its own, so that the server takes the previous and the current
    password while a rotation moves the clients (the collection makes both: MariaDB's accounts,
    RabbitMQ's definitions secret), and drops the replaced one's user after."""
    return f"{prefix}-{hashlib.sha256(password.encode()).hexdigest()[:8]}"


def rabbitmq_parameters():
    import pika

    password = read_secret("RABBITMQ_PASSWORD_FILE", "rabbitmq_password")
    return pika.ConnectionParameters(
        host=env("RABBITMQ_HOST", "rabbitmq"),
        port=env_int("RABBITMQ_PORT", 5672, 1),
        virtual_host=env("RABBITMQ_VHOST", "/"),
        credentials=pika.PlainCredentials(credential_user(env("RABBITMQ_USER", "shopstream"), password), password),
        heartbeat=30,
        blocked_connection_timeout=10,
        connection_attempts=1,
        socket_timeout=5,
    )
