"""gateway: the only public API. Verifies JWTs (except for /api/auth/*), rate-limits each client in Redis
(429), and forwards /api/auth/* to auth, /api/products* to product, /api/orders* to order and the
WebSocket /api/notifications/ws to notification, with the caller's own token (Authorization), which each of them
verifies again: no header names a user."""

import contextlib
import http.client
import logging
import select
import socket
import time
import uuid

from . import clients, config, ratelimit, server, tokens, websocket

LOG = logging.getLogger("shopstream.gateway")
FORWARDED_REQUEST_HEADERS = ("Content-Type", "Accept", "Accept-Language", "User-Agent")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Location", "Retry-After")
# Without Redis (restarting, or its password being rotated) each replica counts in its own memory
# and tries Redis again after this many seconds: the shop stays open and logins stay limited;
# /healthz reports "degraded" with 200, so Traefik keeps every gateway.
REDIS_RETRY_SECONDS = 1.0


def upstream(name):
    return config.env(f"{name.upper()}_HOST", name), config.env_int(f"{name.upper()}_PORT", 8080, 1)


def client_address(peer, forwarded_for, trusted_hops):
    """The client's address: the peer, or the entry the nearest trusted proxy appended to X-Forwarded-For."""
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    if trusted_hops and hops:
        return hops[-min(trusted_hops, len(hops))]
    return peer


def build():
    verify_token = tokens.token_verifier()
    window = config.env_int("RATE_LIMIT_WINDOW_SECONDS", 60, 1)
    redis = clients.redis_client()
    limiters = {
        "api": ratelimit.RateLimiter(redis, config.env_int("RATE_LIMIT_REQUESTS", 100, 1), window),
        "login": ratelimit.RateLimiter(redis, config.env_int("RATE_LIMIT_LOGIN_REQUESTS", 10, 1), window),
    }
    local = {name: ratelimit.LocalRateLimiter(limiter.limit, window) for name, limiter in limiters.items()}
    redis_retry_at = [0.0]  # monotonic time before which the limiters count locally
    trusted_hops = config.env_int("TRUSTED_PROXY_HOPS", 0)
    timeout = config.env_int("UPSTREAM_TIMEOUT_SECONDS", 15, 1)
    # Per address of an upstream's name (dnsrr: one per task). A task whose node is gone keeps its
    # address in DNS until the swarm marks it down: a connection to it is given up after this, and
    # the next address tried, rather than the request waiting out `timeout` there.
    connect_timeout = config.env_int("UPSTREAM_CONNECT_TIMEOUT_SECONDS", 2, 1)
    upstreams = {name: upstream(name) for name in ("auth", "product", "order", "notification")}
    app = server.App("gateway")

    def redis_ping():
        return redis.ping()  # redis.ping is looked up at each check, not bound once: the tests stand in a failing one

    app.optional_checks["redis"] = redis_ping
    app.ready.set()

    def admit(req, bucket, needs_auth):
        """(claims, token, via_protocol): the verified claims and their token (None for an anonymous request that
        needs none); HTTPError 429 or 401."""
        token, via_protocol = tokens.bearer_token(req.headers)
        claims, reason = None, "no token"
        if token:
            try:
                claims = verify_token(token)
            except tokens.JWTError as exc:
                reason = str(exc)
        client = (
            req.client
            if not trusted_hops
            else client_address(req.client, req.headers.get("X-Forwarded-For"), trusted_hops)
        )
        key = f"user:{claims['sub']}" if claims else f"ip:{client}"
        allowed = None
        if time.monotonic() >= redis_retry_at[0]:
            try:
                allowed, _remaining, retry_after = limiters[bucket].check(key, bucket)
            except Exception as exc:  # noqa: BLE001 - Redis down: see REDIS_RETRY_SECONDS
                app.metrics.inc(
                    "shopstream_gateway_ratelimit_errors_total", "Rate-limit checks that failed.", bucket=bucket
                )
                if not redis_retry_at[0]:
                    error = type(exc).__name__
                    LOG.warning("Redis unavailable, rate limits counted per replica", extra={"error": error})
                redis_retry_at[0] = time.monotonic() + REDIS_RETRY_SECONDS
            else:
                if redis_retry_at[0]:
                    LOG.info("Redis available again, rate limits counted in Redis")
                redis_retry_at[0] = 0.0
        if allowed is None:
            allowed, _remaining, retry_after = local[bucket].check(key, bucket)
        if not allowed:
            app.metrics.inc("shopstream_gateway_rate_limited_total", "Requests refused with 429.", bucket=bucket)
            raise server.HTTPError(429, "too many requests", {"Retry-After": str(retry_after)})
        if needs_auth and claims is None:
            app.metrics.inc("shopstream_gateway_auth_failures_total", "Requests refused with 401.")
            LOG.info("unauthorized", extra={"path": req.path, "reason": reason, "client": client})
            raise server.HTTPError(
                401, "a valid bearer token is required", {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return claims, (token if claims else None), via_protocol

    def forward(req, name, token):
        host, port = upstreams[name]
        headers = {h: req.headers[h] for h in FORWARDED_REQUEST_HEADERS if req.headers.get(h)}
        request_id = req.headers.get("X-Request-Id") or uuid.uuid4().hex
        headers.update({"X-Request-Id": request_id[:64], "X-Forwarded-For": req.client, "Connection": "close"})
        if token:  # the service verifies it again (it trusts no header that names a user)
            headers["Authorization"] = f"Bearer {token}"
        body = req.body() if req.method in ("POST", "PUT", "PATCH") else None
        path = req.path + ("?" + req.raw_query if req.raw_query else "")
        start = time.monotonic()
        conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            conn.connect()  # each address of the name in turn, until one accepts
            conn.sock.settimeout(timeout)
            conn.request(req.method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except socket.timeout:
            raise server.HTTPError(504, f"{name} did not answer in time") from None
        except OSError:
            raise server.HTTPError(502, f"{name} is unavailable") from None
        finally:
            conn.close()
            app.metrics.observe(
                "shopstream_gateway_upstream_duration_seconds",
                "Upstream latency.",
                time.monotonic() - start,
                upstream=name,
            )
        out = {h: resp.headers[h] for h in FORWARDED_RESPONSE_HEADERS if resp.headers.get(h)}
        out["X-Request-Id"] = request_id
        return resp.status, data, out

    def route_to(name, bucket="api", needs_auth=True):
        def handler(req):
            token = admit(req, bucket, needs_auth)[1]
            return forward(req, name, token)

        return handler

    def relay_websocket(req):
        _claims, token, via_protocol = admit(req, "api", True)
        key = req.headers.get("Sec-WebSocket-Key", "")
        if "websocket" not in req.headers.get("Upgrade", "").lower() or len(key) != 24:
            raise server.HTTPError(426, "a WebSocket upgrade is required", {"Sec-WebSocket-Version": "13"})
        host, port = upstreams["notification"]
        try:
            up = socket.create_connection((host, port), timeout=5)
        except OSError:
            raise server.HTTPError(502, "notification is unavailable") from None
        try:
            lines = [
                f"GET {req.path} HTTP/1.1",
                f"Host: {host}:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                f"Authorization: Bearer {token}",
            ]
            if via_protocol:
                lines.append("Sec-WebSocket-Protocol: bearer")
            up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = up.recv(4096)
                if not chunk or len(head) > 16384:
                    raise server.HTTPError(502, "notification closed the handshake")
                head += chunk
            status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else b""
            if status != b"101":
                raise server.HTTPError(502, f"notification refused the WebSocket ({status.decode(errors='replace')})")
            handler = req.handler
            handler.close_connection = True
            downstream = handler.connection
            downstream.sendall(head)
            up.settimeout(None)
            downstream.settimeout(None)
            app.metrics.inc("shopstream_gateway_websockets_total", "WebSockets relayed.")
            pipe(downstream, up)
        finally:
            up.close()
        return None

    def pipe(downstream, up):
        peers = {downstream: up, up: downstream}
        while not app.draining:
            readable = select.select(list(peers), [], [], 0.5)[0]
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)
        with contextlib.suppress(OSError):  # draining: tell the browser to reconnect (to another gateway)
            downstream.sendall(websocket.ws_encode(websocket.OP_CLOSE, (1001).to_bytes(2, "big")))

    app.route("*", r"/api/auth/.*", route_to("auth", "login", needs_auth=False), label="/api/auth/*")
    app.route("*", r"/api/products(/.*)?", route_to("product"), label="/api/products*")
    app.route("*", r"/api/orders(/.*)?", route_to("order"), label="/api/orders*")
    app.route("GET", r"/api/notifications/ws", relay_websocket)
    return app
