"""The order event: what order publishes to RabbitMQ and notification consumes, and their topology."""

import json
import time
import uuid
from datetime import datetime, timezone

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
