"""A small threaded HTTP server for the services: routes, JSON errors, metrics, health checks, and a
drain of in-flight requests on SIGTERM.
"""

import contextlib
import json
import logging
import re
import signal
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .config import env_int
from .metrics import Metrics
from .tokens import JWTError, bearer_token

LOG = logging.getLogger("shopstream")
MAX_BODY = 1 << 20


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
