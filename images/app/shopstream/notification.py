"""notification: consumes order.created events from RabbitMQ and pushes each to its user's WebSocket clients
(GET /api/notifications/ws, for the user of the token the gateway forwards, verified here again)."""

import contextlib
import json
import logging
import queue
import socket
import threading
import time

from . import clients, events, server, tokens, websocket

LOG = logging.getLogger("shopstream.notification")
PING_EVERY = 20.0


class Client:
    def __init__(self, handler, user):
        self.sock, self.rfile, self.user = handler.connection, handler.rfile, user
        self.queue = queue.Queue(maxsize=256)
        self.closed = threading.Event()
        self.wlock = threading.Lock()

    def send(self, opcode, payload=b""):
        with self.wlock:
            self.sock.sendall(websocket.ws_encode(opcode, payload))

    def read_loop(self):
        """Answers pings and closes; what clients send otherwise is ignored."""
        try:
            while not self.closed.is_set():
                opcode, payload = websocket.ws_read(self.rfile.read)
                if opcode == websocket.OP_PING:
                    self.send(websocket.OP_PONG, payload)
                elif opcode == websocket.OP_CLOSE:
                    self.send(websocket.OP_CLOSE, payload[:2])
                    break
        except (EOFError, OSError, ValueError):
            pass
        finally:
            self.closed.set()


class Hub:
    def __init__(self):
        self.lock, self.clients = threading.Lock(), {}

    def add(self, client):
        with self.lock:
            self.clients.setdefault(client.user, set()).add(client)

    def remove(self, client):
        with self.lock:
            held = self.clients.get(client.user, set())
            held.discard(client)
            if not held:
                self.clients.pop(client.user, None)

    def count(self):
        with self.lock:
            return sum(len(c) for c in self.clients.values())

    def deliver(self, event):
        """Queues a notification for each client of the event's user; returns how many."""
        message = json.dumps(
            {
                "type": event["type"],
                "event_id": event["id"],
                "occurred_at": event["occurred_at"],
                "order": event["order"],
            }
        )
        with self.lock:
            targets = list(self.clients.get(event["user"], ()))
        delivered = 0
        for client in targets:
            try:
                client.queue.put_nowait(message)
                delivered += 1
            except queue.Full:
                LOG.warning("client too slow, notification dropped", extra={"user": client.user})
        return delivered


def build():
    params = clients.rabbitmq_parameters()
    app = server.App("notification", verify_token=tokens.token_verifier())
    hub = Hub()
    state = {"connected": False}
    app.metrics.gauge_fn("shopstream_notification_clients", "Connected WebSocket clients.", hub.count)

    def rabbit_ok():
        if not state["connected"]:
            raise ConnectionError("not consuming from RabbitMQ")

    # Connected WebSockets stay while RabbitMQ is away (a rotation or a restart of the broker): the
    # consumer reconnects and /healthz is "degraded", not failing, so neither Traefik nor Swarm drops
    # a replica for it.
    app.optional_checks["rabbitmq"] = rabbit_ok

    def consume():
        import pika

        delay = 0.5
        while not app.stopping.is_set():
            try:
                conn = pika.BlockingConnection(params)
                try:
                    channel = conn.channel()
                    events.declare_order_topology(channel)
                    channel.basic_qos(prefetch_count=50)
                    state["connected"], delay = True, 0.5
                    app.ready.set()
                    LOG.info("consuming", extra={"queue": events.NOTIFICATION_QUEUE})
                    for method, _props, body in channel.consume(events.NOTIFICATION_QUEUE, inactivity_timeout=1):
                        if app.stopping.is_set():
                            break
                        if method is None:
                            continue
                        try:
                            event = events.parse_order_event(body)
                        except events.EventError as exc:
                            LOG.warning("event rejected", extra={"error": str(exc)})
                            channel.basic_nack(method.delivery_tag, requeue=False)
                            continue
                        delivered = hub.deliver(event)
                        channel.basic_ack(method.delivery_tag)
                        app.metrics.inc("shopstream_notification_events_total", "Order events consumed.")
                        app.metrics.inc("shopstream_notification_pushed_total", "Notifications queued.", delivered)
                        LOG.info(
                            "event consumed",
                            extra={
                                "event_id": event["id"],
                                "order_id": event["order"]["id"],
                                "user": event["user"],
                                "clients": delivered,
                            },
                        )
                    channel.cancel()
                finally:
                    state["connected"] = False
                    if conn.is_open:
                        conn.close()
            except Exception as exc:  # noqa: BLE001 - keep consuming whatever went wrong
                state["connected"] = False
                LOG.warning("RabbitMQ unavailable, retrying", extra={"error": f"{type(exc).__name__}: {exc}"})
                app.stopping.wait(delay)
                delay = min(10.0, delay * 2)

    def open_websocket(req):
        headers = req.headers
        if "websocket" not in headers.get("Upgrade", "").lower() or headers.get("Sec-WebSocket-Version") != "13":
            raise server.HTTPError(426, "a WebSocket (version 13) upgrade is required", {"Sec-WebSocket-Version": "13"})
        key = headers.get("Sec-WebSocket-Key", "")
        if len(key) != 24:
            raise server.HTTPError(400, "bad Sec-WebSocket-Key")
        if app.draining:
            raise server.HTTPError(503, "draining")
        handler = req.handler
        handler.close_connection = True
        handler.send_response(101)
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", websocket.ws_accept(key))
        offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if "bearer" in offered:
            handler.send_header("Sec-WebSocket-Protocol", "bearer")
        handler.end_headers()
        # A client that neither sends nor answers the pings for 3 intervals is gone: its read times out.
        handler.connection.settimeout(3 * PING_EVERY)
        client = Client(handler, req.user)
        hub.add(client)
        threading.Thread(target=client.read_loop, daemon=True).start()
        LOG.info("client connected", extra={"user": req.user})
        last_ping = time.monotonic()
        try:
            while not client.closed.is_set() and not app.draining:
                with contextlib.suppress(queue.Empty):
                    client.send(websocket.OP_TEXT, client.queue.get(timeout=0.5))
                if time.monotonic() - last_ping > PING_EVERY:  # its pong keeps the read side alive
                    client.send(websocket.OP_PING)
                    last_ping = time.monotonic()
            if app.draining and not client.closed.is_set():
                client.send(websocket.OP_CLOSE, (1001).to_bytes(2, "big") + b"server shutting down")
        except OSError:
            pass
        finally:
            client.closed.set()
            hub.remove(client)
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_RDWR)
            LOG.info("client disconnected", extra={"user": req.user})
        return None

    app.route("GET", "/api/notifications/ws", open_websocket, user=True)
    threading.Thread(target=consume, daemon=True).start()
    return app
