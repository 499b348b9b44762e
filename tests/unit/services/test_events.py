"""The event flow: order publishes the event shape notification consumes and pushes to the order's user."""

import json
import sys
import types

import pytest
from shopstream import events, server

ORDER = {
    "id": 42,
    "user": "demo",
    "status": "confirmed",
    "total_cents": 2598,
    "items": [{"product_id": 7, "quantity": 2}],
}


class FakeChannel:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))

    @property
    def is_closed(self):
        return False


@pytest.fixture
def fake_pika(monkeypatch):
    """Just enough of pika for order.Publisher: a BlockingConnection whose channel records calls."""
    channel = FakeChannel()

    class Connection:
        is_closed, is_open = False, True

        def __init__(self, params):
            self.params = params

        def channel(self):
            return channel

        def close(self):
            pass

    class AMQPError(Exception):
        pass

    module = types.SimpleNamespace(
        BlockingConnection=Connection,
        BasicProperties=lambda **kw: kw,
        exceptions=types.SimpleNamespace(AMQPError=AMQPError),
    )
    monkeypatch.setitem(sys.modules, "pika", module)
    return channel


def test_order_publishes_what_notification_accepts(fake_pika):
    from shopstream import notification, order

    event = events.make_order_event(ORDER, now=1_700_000_000)
    order.Publisher(params=None).publish(event)

    declared = [c for c in fake_pika.calls if c[0] in ("exchange_declare", "queue_declare", "queue_bind")]
    assert (
        "queue_bind",
        (),
        {"queue": events.NOTIFICATION_QUEUE, "exchange": events.ORDER_EXCHANGE, "routing_key": events.ORDER_CREATED},
    ) in declared
    assert ("confirm_delivery", (), {}) in fake_pika.calls
    (publish,) = [c for c in fake_pika.calls if c[0] == "basic_publish"]
    exchange, routing_key, body = publish[1]
    assert (exchange, routing_key) == (events.ORDER_EXCHANGE, events.ORDER_CREATED)
    assert publish[2]["mandatory"] is True
    assert publish[2]["properties"]["delivery_mode"] == 2  # persistent

    consumed = events.parse_order_event(body)  # what notification's consumer does with the body
    assert consumed == json.loads(json.dumps(event))
    assert consumed["occurred_at"] == "2023-11-14T22:13:20+00:00"

    hub = notification.Hub()
    mine, other = FakeClient("demo"), FakeClient("someone")
    hub.add(mine)
    hub.add(other)
    assert hub.deliver(consumed) == 1
    pushed = json.loads(mine.queue.get_nowait())
    assert pushed["type"] == "order.created"
    assert pushed["order"] == {
        "id": 42,
        "status": "confirmed",
        "total_cents": 2598,
        "items": [{"product_id": 7, "quantity": 2}],
    }
    assert other.queue.empty()


def test_publisher_reopens_a_lost_connection_once(fake_pika, monkeypatch):
    from shopstream import order

    pika = sys.modules["pika"]
    attempts = []

    def flaky_publish(*args, **kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            raise pika.exceptions.AMQPError("connection lost")

    publisher = order.Publisher(params=None)
    publisher._open()
    monkeypatch.setattr(publisher.channel, "basic_publish", flaky_publish, raising=False)
    fake_pika.basic_publish = flaky_publish
    publisher.publish(events.make_order_event(ORDER))
    assert len(attempts) == 2


class FakeClient:
    def __init__(self, user):
        import queue

        self.user, self.queue = user, queue.Queue()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"type": "order.cancelled", "version": 1}).encode(),
        json.dumps({**events.make_order_event(ORDER), "version": 2}).encode(),
        json.dumps({**events.make_order_event(ORDER), "user": None}).encode(),
        json.dumps({**events.make_order_event(ORDER), "order": {"id": "42"}}).encode(),
    ],
)
def test_notification_rejects_other_messages(body):
    with pytest.raises(events.EventError):
        events.parse_order_event(body)


def test_order_validation_merges_items_and_rejects_nonsense():
    from shopstream import order

    merged = order.validate({"items": [{"product_id": 2, "quantity": 1}, {"product_id": 2, "quantity": 3}]})
    assert merged == [{"product_id": 2, "quantity": 4}]
    for bad in (
        {},
        {"items": []},
        {"items": [{"product_id": "2"}]},
        {"items": [{"product_id": 1, "quantity": 0}]},
        {"items": [{"product_id": True}]},
        {"items": ["x"]},
    ):
        with pytest.raises(server.HTTPError) as err:
            order.validate(bad)
        assert err.value.status == 400


def test_mock_inventory_refuses_more_than_the_stock():
    from shopstream import order

    products = {1: {"stock": 2}}
    order.reserve_inventory([{"product_id": 1, "quantity": 2}], products)
    with pytest.raises(server.HTTPError) as err:
        order.reserve_inventory([{"product_id": 1, "quantity": 3}], products)
    assert err.value.status == 409
