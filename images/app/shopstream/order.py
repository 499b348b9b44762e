"""order: POST /api/orders prices the items through product, mocks inventory and payment, and writes the order
and its order.created event to MariaDB in one transaction (a transactional outbox). A relay thread publishes
the outbox to RabbitMQ with publisher confirms and deletes what the broker confirmed: an order is placed
while RabbitMQ restarts (a rotation, a fault), and its event follows once the broker is back (at least
once; the event id is the message id)."""

import contextlib
import json
import logging
import threading
import urllib.error
import urllib.request
import uuid

from . import clients, config, events, server, tokens

LOG = logging.getLogger("shopstream.order")
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS orders (
  id INT AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(64) NOT NULL,
  items JSON NOT NULL,
  total_cents BIGINT NOT NULL,
  status VARCHAR(32) NOT NULL,
  payment_ref VARCHAR(64) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  KEY by_user (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
""",
    """
CREATE TABLE IF NOT EXISTS order_outbox (
  seq BIGINT AUTO_INCREMENT PRIMARY KEY,
  event JSON NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
""",
)
RELAY_BATCH = 50


def validate(data):
    items = data.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= 50:
        raise server.HTTPError(400, "items must be a list of 1 to 50 {product_id, quantity}")
    merged = {}
    for item in items:
        pid, qty = (item.get("product_id"), item.get("quantity", 1)) if isinstance(item, dict) else (None, None)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (pid, qty)) or qty > 1000:
            raise server.HTTPError(400, "each item needs a positive integer product_id and quantity (at most 1000)")
        merged[pid] = merged.get(pid, 0) + qty
    return [{"product_id": pid, "quantity": qty} for pid, qty in sorted(merged.items())]


def reserve_inventory(items, products):
    """Mock: the stock figure is checked, not decremented."""
    for item in items:
        if products[item["product_id"]]["stock"] < item["quantity"]:
            raise server.HTTPError(409, f"product {item['product_id']} has not enough stock")


def charge_payment(user, total_cents):
    """Mock: every payment succeeds."""
    return "mock-" + uuid.uuid4().hex[:16]


class Publisher:
    """One pika BlockingConnection (not thread-safe, hence the lock), reopened when it was lost."""

    def __init__(self, params):
        self.params, self.lock, self.conn, self.channel = params, threading.Lock(), None, None

    def _open(self):
        import pika

        if self.conn is None or self.conn.is_closed or self.channel is None or self.channel.is_closed:
            self._close()
            self.conn = pika.BlockingConnection(self.params)
            self.channel = self.conn.channel()
            self.channel.confirm_delivery()
            events.declare_order_topology(self.channel)
        return self.channel

    def _close(self):
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:  # noqa: BLE001, S110 - the connection is being discarded
            pass
        self.conn = self.channel = None

    def publish(self, event):
        import pika

        props = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event["id"])
        body = json.dumps(event, separators=(",", ":")).encode()
        with self.lock:
            for attempt in (1, 2):  # a connection the broker closed while idle is reopened once
                try:
                    self._open().basic_publish(
                        events.ORDER_EXCHANGE, events.ORDER_CREATED, body, properties=props, mandatory=True
                    )
                    return
                except pika.exceptions.AMQPError:
                    self._close()
                    if attempt == 2:
                        raise

    def ping(self, wait=1.0):
        """Open (or check) the connection; raises when the broker does not answer. Waits at most
        ``wait`` seconds for the relay's publishing (a health check must answer in time)."""
        if not self.lock.acquire(timeout=wait):
            raise TimeoutError("the relay is still publishing")
        try:
            self._open()
            self.conn.process_data_events(0)
        except Exception:
            self._close()
            raise
        finally:
            self.lock.release()

    def close(self):
        with self.lock:
            self._close()


class Relay:
    """Publishes the outbox in order of placement: a batch is locked (SKIP LOCKED: the relays of the
    other replicas take the next rows), published with confirms, and deleted in the same transaction.
    A broker that refuses or is away rolls the batch back; the relay retries with a capped backoff."""

    def __init__(self, db, publisher, app):
        self.db, self.publisher, self.app, self.wake = db, publisher, app, threading.Event()
        self.failing = False

    def kick(self):
        self.wake.set()

    def drain(self):
        """Publish every outbox row there is; returns how many."""
        sent = 0
        conn = clients.mysql_connect(self.db)
        try:
            with conn.cursor() as cur:
                # Row locks only: under REPEATABLE READ, FOR UPDATE would also lock the gap after the
                # last row, and every order's INSERT would wait while a publish waits on the broker.
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            while True:
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT seq, event FROM order_outbox ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
                        (RELAY_BATCH,),
                    )
                    rows = cur.fetchall()
                    if not rows:
                        conn.commit()
                        return sent
                    for row in rows:
                        self.publisher.publish(json.loads(row["event"]))
                    cur.execute(
                        f"DELETE FROM order_outbox WHERE seq IN ({', '.join(['%s'] * len(rows))})",  # noqa: S608
                        [row["seq"] for row in rows],
                    )
                conn.commit()
                sent += len(rows)
                self.app.metrics.inc(
                    "shopstream_order_events_published_total", "Order events the broker confirmed.", len(rows)
                )
        except Exception:
            with contextlib.suppress(Exception):  # a connection that is gone has nothing to roll back
                conn.rollback()
            raise
        finally:
            conn.close()

    def run(self):
        delay = 0.5
        while not self.app.stopping.is_set():
            if self.failing:  # new orders do not cut the backoff short
                self.app.stopping.wait(delay)
            else:
                self.wake.wait(1.0)
            self.wake.clear()
            if not self.app.ready.is_set():
                continue
            try:
                sent = self.drain()
            except Exception as exc:  # noqa: BLE001 - the broker or the database is away: retry
                self.app.metrics.inc("shopstream_order_events_failed_total", "Outbox batches not published (retried).")
                LOG.warning(
                    "outbox not published, retrying", extra={"error": f"{type(exc).__name__}: {exc}", "retry_s": delay}
                )
                self.failing, delay = True, min(10.0, delay * 2)
                continue
            if self.failing:
                LOG.info("outbox published again", extra={"events": sent})
            self.failing, delay = False, 0.5


def build():
    db = clients.mysql_config()
    product_url = f"http://{config.env('PRODUCT_HOST', 'product')}:{config.env_int('PRODUCT_PORT', 8080, 1)}"
    publisher = Publisher(clients.rabbitmq_parameters())
    app = server.App("order", verify_token=tokens.token_verifier())
    app.health_checks["mariadb"] = lambda: clients.mysql_ping(db)
    # Orders are placed without the broker (the outbox keeps their events): /healthz is "degraded",
    # not failing, while RabbitMQ is away, so Traefik keeps every order replica.
    app.optional_checks["rabbitmq"] = publisher.ping
    relay = Relay(db, publisher, app)
    app.on_stop.append(publisher.close)

    def init():
        conn = clients.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                for statement in SCHEMA:
                    cur.execute(statement)
            conn.commit()
        finally:
            conn.close()
        LOG.info("schema ready")
        app.ready.set()
        relay.kick()

    def fetch_product(pid, token):
        """The product, asked for with the caller's own token (product verifies it too)."""
        url, auth = f"{product_url}/api/products/{pid}", {"Authorization": f"Bearer {token}"}
        request = urllib.request.Request(url, headers=auth)  # noqa: S310 - an http:// URL of our own
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise server.HTTPError(400, f"no product {pid}") from None
            if exc.code == 503:  # its database cannot answer for a moment: so says order, with its Retry-After
                retry = exc.headers.get("Retry-After") or server.UNAVAILABLE_RETRY_AFTER
                raise server.HTTPError(503, "product unavailable for a moment", {"Retry-After": retry}) from None
            raise server.HTTPError(502, "product service error") from None
        except OSError:
            raise server.HTTPError(503, "product service unavailable") from None

    def create_order(req):
        if not app.ready.is_set():
            raise server.HTTPError(503, "starting")
        items = validate(req.json())
        products = {i["product_id"]: fetch_product(i["product_id"], req.token) for i in items}
        reserve_inventory(items, products)
        total = sum(products[i["product_id"]]["price_cents"] * i["quantity"] for i in items)
        payment_ref = charge_payment(req.user, total)
        conn = clients.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO orders (username, items, total_cents, status, payment_ref)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (req.user, json.dumps(items), total, "confirmed", payment_ref),
                )
                order = {
                    "id": cur.lastrowid,
                    "user": req.user,
                    "items": items,
                    "total_cents": total,
                    "status": "confirmed",
                }
                event = events.make_order_event(order)
                cur.execute("INSERT INTO order_outbox (event) VALUES (%s)", (json.dumps(event, separators=(",", ":")),))
            conn.commit()
        finally:
            conn.close()
        relay.kick()
        app.metrics.inc("shopstream_orders_created_total", "Orders placed.")
        LOG.info("order placed", extra={"order_id": order["id"], "user": req.user, "event_id": event["id"]})
        return 201, {**order, "payment_ref": payment_ref, "event_id": event["id"]}

    def list_orders(req):
        if not app.ready.is_set():
            raise server.HTTPError(503, "starting")
        conn = clients.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT id, items, total_cents, status, created_at FROM orders WHERE username=%s "
                    "ORDER BY id DESC LIMIT 100",
                    (req.user,),
                )
                rows = cur.fetchall()
        finally:
            conn.close()
        for row in rows:
            row["items"] = json.loads(row["items"])
            row["created_at"] = row["created_at"].isoformat()
        return 200, {"orders": rows}

    app.route("POST", "/api/orders", create_order, user=True)
    app.route("GET", "/api/orders", list_orders, user=True)
    threading.Thread(target=server.retry_forever, args=("startup", init, app.stopping), daemon=True).start()
    threading.Thread(target=relay.run, daemon=True).start()
    return app
