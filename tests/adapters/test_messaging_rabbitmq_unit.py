"""Unit tests of the RabbitMQ adapter's mapping, over a fake transport (no broker).

The driver decides which exchange, routing key, properties and settlements go to the
broker; these tests check those decisions through the private transport protocol
(``messaging_rabbitmq._transport``), the way Go CDK's rabbitpubsub tests its driver over
a fake ``amqp.go``. The contract, interop and failure tests use the real broker.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions
import pytest
from messaging_rabbitmq import RabbitDriver, _names, _pika, _wire
from messaging_rabbitmq._errors import (
    ConnectionDown,
    ConnectTimeout,
    HeadersTooLarge,
    KeyTooLong,
    StaleDelivery,
    error_code,
)
from messaging_rabbitmq._settings import Settings
from messaging_rabbitmq._transport import Binding, Declaration, Exchange, Publish, Queue, Sink
from messaging_rabbitmq.driver import RabbitSubscription
from pika.adapters.utils import connection_workflow

from messaging.driver import Delivery, OutgoingMessage, SubscriptionOptions
from messaging.errors import ConfigurationError, ErrorCode
from messaging.urls import parse_url

# -- the fake transport ----------------------------------------------------------------


@dataclasses.dataclass
class FakeConsumer:
    queue: str
    prefetch: int
    sink: Sink
    acked: list[int] = dataclasses.field(default_factory=list)
    stopped: bool = False
    closed: bool = False

    def ack(self, tags: Sequence[int]) -> None:
        self.acked.extend(tags)

    def stop(self) -> bool:
        self.stopped = True
        return True

    def close(self) -> None:
        self.closed = True

    def native(self) -> object:
        return self

    def push(self, tag: int, body: bytes = b"body", *, routing_key: str = "k",
             redelivered: bool = False, **properties: Any) -> None:
        defaults: dict[str, Any] = {"delivery_mode": 2, "message_id": f"id-{tag}",
                                    "timestamp": 1_700_000_000}
        self.sink.deliver([(tag, routing_key, redelivered,
                            pika.BasicProperties(**{**defaults, **properties}), body)])


class FakeTransport:
    """Records what the driver asks for; ``ready`` and ``missing`` shape the answers."""

    def __init__(self) -> None:
        self.alive = True
        self.frame_max = 131072
        self.declared: list[Declaration] = []
        self.deleted: list[tuple[list[str], list[str]]] = []
        self.published: list[Publish] = []
        self.consumers: list[FakeConsumer] = []
        self.ready: dict[str, int] = {}
        self.missing: set[str] = set()
        self.outcomes: list[BaseException | None] | None = None

    def declare(self, declarations: Sequence[Declaration]) -> list[int]:
        counts = []
        for item in declarations:
            name = item.queue if isinstance(item, Binding) else item.name
            if name in self.missing:
                raise pika.exceptions.ChannelClosedByBroker(404, f"NOT_FOUND - no {name!r}")
            self.declared.append(item)
            counts.append(self.ready.get(name, 0) if isinstance(item, Queue) else 0)
        return counts

    def delete(self, queues: Sequence[str], exchanges: Sequence[str]) -> None:
        self.deleted.append((list(queues), list(exchanges)))

    def publish(self, messages: Sequence[Publish]) -> list[BaseException | None]:
        self.published.extend(messages)
        if self.outcomes is not None:
            return list(self.outcomes)
        return [None] * len(messages)

    def consume(self, queue: str, prefetch: int, sink: Sink) -> FakeConsumer:
        if queue in self.missing:
            raise pika.exceptions.ChannelClosedByBroker(404, f"NOT_FOUND - no queue {queue!r}")
        consumer = FakeConsumer(queue, prefetch, sink)
        self.consumers.append(consumer)
        return consumer

    def native(self) -> object:
        return self

    def close(self) -> None:
        self.alive = False


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def driver(transport: FakeTransport) -> RabbitDriver:
    return RabbitDriver(Settings(), lambda: transport)


def subscribe(driver: RabbitDriver, transport: FakeTransport, prefetch: int = 10
              ) -> tuple[RabbitSubscription, FakeConsumer]:
    subscription = driver.subscribe("orders", "billing", SubscriptionOptions(prefetch=prefetch))
    return subscription, transport.consumers[-1]


def declared(transport: FakeTransport, kind: type) -> list[Any]:
    return [item for item in transport.declared if isinstance(item, kind)]


# -- sending ---------------------------------------------------------------------------


def test_send_maps_key_headers_and_content_type(driver: RabbitDriver,
                                                transport: FakeTransport) -> None:
    results = driver.send_batch("orders", [
        OutgoingMessage(b'{"id": 7}', key="user-42",
                        headers={"content-type": "application/json", "source": "web"}),
        OutgoingMessage(b"raw"),
    ])

    first, second = transport.published
    assert (first.exchange, first.routing_key, first.body) == ("orders", "user-42",
                                                               b'{"id": 7}')
    assert first.properties.content_type == "application/json"
    assert first.properties.headers == {"source": "web"}
    assert first.properties.delivery_mode == 2
    assert first.properties.message_id == results[0]
    assert (second.routing_key, second.properties.headers,
            second.properties.content_type) == ("", None, None)
    assert len(set(results)) == 2
    assert all(isinstance(result, str) for result in results)


def test_the_destination_is_checked_once_per_connection(driver: RabbitDriver,
                                                        transport: FakeTransport) -> None:
    driver.send_batch("orders", [OutgoingMessage(b"a")])
    driver.send_batch("orders", [OutgoingMessage(b"b")])
    assert declared(transport, Exchange) == [Exchange("orders", passive=True)]


def test_a_missing_destination_is_not_found_before_sending(driver: RabbitDriver,
                                                           transport: FakeTransport) -> None:
    transport.missing.add("orders")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        driver.send_batch("orders", [OutgoingMessage(b"a")])
    assert driver.error_code(caught.value) is ErrorCode.NOT_FOUND
    assert transport.published == []


def test_per_message_failures_are_reported_in_order(driver: RabbitDriver,
                                                    transport: FakeTransport) -> None:
    refused = pika.exceptions.AMQPChannelError("nacked")
    transport.outcomes = [None, refused]
    results = driver.send_batch("orders", [OutgoingMessage(b"a"), OutgoingMessage(b"b")])
    assert isinstance(results[0], str)
    assert results[1] is refused


def test_a_delayed_send_waits_in_a_ttl_queue_that_feeds_the_exchange(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    driver.send_batch("orders", [OutgoingMessage(b"later", key="k", delay=1.523)])

    name = "orders~delay-1600"  # rounded up to two significant digits of ms
    (publish,) = transport.published
    assert (publish.exchange, publish.routing_key) == (name, "k")
    assert Exchange(name, auto_delete=True) in transport.declared
    assert Binding(name, name) in transport.declared
    (queue,) = [q for q in declared(transport, Queue) if q.name == name]
    assert queue.arguments == {"x-queue-type": "quorum", "x-message-ttl": 1600,
                               "x-expires": 2 * 1600 + 60_000,
                               "x-dead-letter-exchange": "orders",
                               "x-dead-letter-strategy": "at-least-once",
                               "x-overflow": "reject-publish"}


def test_a_delay_queue_is_declared_again_only_when_due(driver: RabbitDriver,
                                                       transport: FakeTransport) -> None:
    for _ in range(3):
        driver.send_batch("orders", [OutgoingMessage(b"later", delay=5.0)])
    assert len([q for q in declared(transport, Queue) if "~delay-" in q.name]) == 1


def test_a_key_longer_than_a_routing_key_fails_the_batch_unsent(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    with pytest.raises(KeyTooLong) as caught:
        driver.send_batch("orders", [OutgoingMessage(b"ok"),
                                     OutgoingMessage(b"x", key="\u00e9" * 200)])
    assert driver.error_code(caught.value) is ErrorCode.CONFIGURATION
    assert transport.published == []


def test_headers_over_one_frame_fail_the_batch_unsent(driver: RabbitDriver,
                                                      transport: FakeTransport) -> None:
    transport.frame_max = 4096
    with pytest.raises(HeadersTooLarge) as caught:
        driver.send_batch("orders", [OutgoingMessage(b"x", headers={"big": "y" * 5000})])
    assert driver.error_code(caught.value) is ErrorCode.TOO_LARGE
    assert transport.published == []


def test_a_long_content_type_stays_a_header() -> None:
    long_type = "application/x-" + "a" * 300
    props = _wire.properties(OutgoingMessage(b"x", headers={"content-type": long_type}),
                             "id", 1, 100_000)
    assert props.content_type is None
    assert props.headers == {"content-type": long_type}


# -- receiving: the wire mapping -------------------------------------------------------


def _delivery(redelivered: bool = False, routing_key: str = "k", body: bytes = b"b",
              **properties: Any) -> Delivery:
    return _wire.delivery((1, 1), routing_key, redelivered,
                          pika.BasicProperties(**properties), body, destination="orders")


def test_a_delivery_maps_properties_back() -> None:
    got = _delivery(content_type="text/plain", message_id="m-1", timestamp=1_700_000_000,
                    headers={"h": "v"})
    assert got.key == "k"
    assert got.headers == {"h": "v", "content-type": "text/plain"}
    assert got.id == "m-1"
    assert got.attempt == 1
    assert got.timestamp == dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    assert got.destination == "orders"
    assert (got.ack_id, got.body, got.position) == ((1, 1), b"b", None)
    assert _delivery(routing_key="").key is None
    # A plain publisher's timestamp past year 9999: delivered, undated.
    assert _delivery(timestamp=2**62).timestamp is None


@pytest.mark.parametrize(("redelivered", "headers", "attempt"), [
    (False, None, 1),
    (True, None, 2),  # classic queue: the flag is all there is
    (True, {"x-delivery-count": 2}, 3),  # quorum queue: its count wins over the flag
    (False, {"x-prior-deliveries": 2}, 3),  # re-published by the adapter
    (True, {"x-prior-deliveries": 2, "x-delivery-count": 1}, 4),
    (False, {"x-delivery-count": "junk"}, 1),
], ids=["first", "classic-redelivered", "quorum-count", "republished", "both", "junk"])
def test_attempt_adds_what_the_broker_and_the_adapter_counted(
        redelivered: bool, headers: dict[str, object] | None, attempt: int) -> None:
    assert _delivery(redelivered, headers=headers).attempt == attempt
    assert _wire.attempt_of(redelivered, pika.BasicProperties(headers=headers)) == attempt


def test_bookkeeping_headers_are_hidden_and_other_values_become_text() -> None:
    headers = {
        "x-delivery-count": 1, "x-prior-deliveries": 1, "x-first-death-reason": "expired",
        "x-death": [{"count": 1, "reason": "expired"}],
        "number": 42, "flag": True, "raw": b"\xc3\xa9t\xc3\xa9", "table": {"a": [1, "b"]},
        "when": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC), "nothing": None,
        "long": pika.compat.long(7),
    }
    assert _delivery(headers=headers).headers == {
        "number": "42", "flag": "true", "raw": "\u00e9t\u00e9",
        "table": '{"a":[1,"b"]}', "when": "2024-05-01T12:00:00+00:00", "nothing": "",
        "long": "7",
    }


def test_a_message_without_message_id_gets_a_stable_content_id() -> None:
    first = _delivery(headers={"h": "v"}, timestamp=5)
    again = _delivery(True, headers={"h": "v", "x-delivery-count": 1}, timestamp=5)
    other = _delivery(headers={"h": "v"}, timestamp=5, body=b"other")
    assert first.id == again.id != other.id


# -- consuming and settling ------------------------------------------------------------


def test_subscribe_declares_the_group_queue_bound_to_the_exchange(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    _subscription, consumer = subscribe(driver, transport, prefetch=7)
    assert transport.declared == [Exchange("orders", passive=True),
                                  Queue("orders:billing", {"x-queue-type": "quorum"}),
                                  Binding("orders:billing", "orders")]
    assert (consumer.queue, consumer.prefetch) == ("orders:billing", 7)


def test_classic_priority_queues_carry_x_max_priority(transport: FakeTransport) -> None:
    driver = RabbitDriver(Settings(queue_type="classic", max_priority=9), lambda: transport)
    driver.create("orders", 1, ["billing"], {})
    assert Queue("orders:billing", {"x-queue-type": "classic", "x-max-priority": 9}) \
        in transport.declared
    assert driver.capabilities().priority == 10


def test_create_refuses_unknown_options(driver: RabbitDriver) -> None:
    with pytest.raises(ConfigurationError, match="no_such_option"):
        driver.create("orders", 1, [], {"no_such_option": True})


def test_receive_hands_out_what_arrived_and_ack_settles_it(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    subscription, consumer = subscribe(driver, transport)
    consumer.push(1, b"one")
    consumer.push(2, b"two")

    got = subscription.receive_batch(10, 0.0)

    assert [d.body for d in got] == [b"one", b"two"]
    assert subscription.in_flight() == 2
    subscription.send_acks([got[0].ack_id, got[1].ack_id])
    assert consumer.acked == [1, 2]
    assert subscription.in_flight() == 0
    assert subscription.receive_batch(10, 0.0) == []


def test_a_nack_republishes_on_the_next_receive_with_the_count_carried(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    subscription, consumer = subscribe(driver, transport)
    consumer.push(1, b"again", routing_key="user-42", headers={"h": "v",
                                                               "x-delivery-count": 1})
    (delivery,) = subscription.receive_batch(10, 0.0)
    assert delivery.attempt == 2

    subscription.send_nacks([delivery.ack_id], None)
    assert transport.published == []  # held back until the intake is safe
    assert subscription.in_flight() == 1  # still counted by depth
    subscription.receive_batch(10, 0.0)

    (copy,) = transport.published
    assert (copy.exchange, copy.routing_key, copy.body) == ("orders:billing", "user-42",
                                                            b"again")
    assert copy.properties.headers == {"h": "v", "x-prior-deliveries": 2}
    assert copy.properties.message_id == delivery.id
    assert [Exchange("orders:billing"), Binding("orders:billing", "orders:billing")] == \
        transport.declared[-2:]
    assert consumer.acked == [1]
    assert subscription.in_flight() == 0


def test_a_delayed_nack_goes_through_the_groups_delay_queue(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    subscription, consumer = subscribe(driver, transport)
    consumer.push(1, expiration="60000", user_id="someone-else")
    (delivery,) = subscription.receive_batch(10, 0.0)

    subscription.send_nacks([delivery.ack_id], 1.5)

    (copy,) = transport.published
    assert copy.exchange == "orders:billing~delay-1500"
    (queue,) = [q for q in declared(transport, Queue) if q.name == copy.exchange]
    assert queue.arguments["x-dead-letter-exchange"] == "orders:billing"
    assert queue.arguments["x-message-ttl"] == 1500
    assert copy.properties.expiration is None  # it would cut the delay short
    assert copy.properties.user_id is None  # the broker checks it against our user
    assert consumer.acked == [1]


def test_an_unconfirmed_copy_leaves_the_original_unsettled(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    subscription, consumer = subscribe(driver, transport)
    consumer.push(1)
    (delivery,) = subscription.receive_batch(10, 0.0)
    lost = pika.exceptions.ChannelClosedByBroker(406, "PRECONDITION_FAILED")
    transport.outcomes = [lost]

    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        subscription.send_nacks([delivery.ack_id], 2.0)
    assert consumer.acked == []
    assert subscription.in_flight() == 1


def test_close_gives_back_what_nobody_saw_with_its_count_unchanged(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    subscription, consumer = subscribe(driver, transport)
    consumer.push(1, b"seen")
    (seen,) = subscription.receive_batch(1, 0.0)
    consumer.push(2, b"unseen", headers={"x-delivery-count": 1})
    consumer.push(3, b"fresh")
    subscription.send_nacks([seen.ack_id], None)  # what the portable layer does first

    subscription.close()

    assert consumer.stopped
    assert consumer.closed
    copies = {p.body: p.properties.headers["x-prior-deliveries"] for p in transport.published}
    assert copies == {b"seen": 1, b"unseen": 1, b"fresh": 0}
    assert sorted(consumer.acked) == [1, 2, 3]
    subscription.close()  # idempotent


def test_depth_adds_ready_held_and_delayed(driver: RabbitDriver,
                                           transport: FakeTransport) -> None:
    subscription, consumer = subscribe(driver, transport)
    driver.send_batch("orders", [OutgoingMessage(b"later", delay=30.0)])
    transport.ready = {"orders:billing": 3, "orders~delay-30000": 1}
    consumer.push(1)
    consumer.push(2)
    assert driver.depth("orders", "billing") == 3 + 2 + 1
    subscription.receive_batch(1, 0.0)
    assert driver.depth("orders", "billing") == 6  # handed out or not, still unsettled


def test_a_lost_channel_is_reported_once_then_reattached(
        driver: RabbitDriver, transport: FakeTransport) -> None:
    subscription, consumer = subscribe(driver, transport)
    consumer.push(1)
    (delivery,) = subscription.receive_batch(1, 0.0)
    assert subscription.holds(delivery.ack_id)
    consumer.push(2)
    lost = pika.exceptions.StreamLostError("connection reset")
    consumer.sink.failed(lost)

    assert not subscription.holds(delivery.ack_id)  # the worker will not start it
    with pytest.raises(pika.exceptions.StreamLostError):
        subscription.receive_batch(10, 0.0)  # the buffered one is the broker's again
    with pytest.raises(StaleDelivery) as caught:
        subscription.send_acks([delivery.ack_id])
    assert error_code(caught.value) is ErrorCode.CONNECTION
    subscription.send_nacks([delivery.ack_id], None)  # already back: nothing to do

    assert subscription.receive_batch(10, 0.0) == []
    assert len(transport.consumers) == 2  # re-attached on the next call
    transport.consumers[-1].push(1, b"again", redelivered=True)
    (again,) = subscription.receive_batch(10, 0.0)
    assert again.ack_id != delivery.ack_id  # tags of the new channel are a new epoch
    assert subscription.holds(again.ack_id)
    assert not subscription.holds(delivery.ack_id)


def test_a_lost_connection_is_reopened_with_backoff() -> None:
    transports = [FakeTransport()]
    failures: list[Exception] = []

    def connect() -> FakeTransport:
        if failures:
            raise failures.pop()
        transports.append(FakeTransport())
        return transports[-1]

    driver = RabbitDriver(Settings(), connect)
    driver._transport.close()  # lost
    refused = ConnectionRefusedError("refused")
    failures.append(refused)

    with pytest.raises(ConnectionRefusedError):
        driver.send_batch("orders", [OutgoingMessage(b"x")])
    with pytest.raises(ConnectionDown):  # too soon for another attempt
        driver.send_batch("orders", [OutgoingMessage(b"x")])
    driver._next_attempt = 0.0  # the backoff has passed
    driver.send_batch("orders", [OutgoingMessage(b"x")])
    assert len(transports[-1].published) == 1


def test_delete_removes_what_this_connection_knows(driver: RabbitDriver,
                                                   transport: FakeTransport) -> None:
    driver.create("orders", 1, ["billing", "audit"], {})
    driver.send_batch("orders", [OutgoingMessage(b"x", delay=2.0)])
    driver.delete("orders")
    ((queues, exchanges),) = transport.deleted
    assert queues == ["orders~delay-2000", "orders:audit", "orders:billing"]
    assert exchanges == ["orders:audit", "orders:billing", "orders"]


# -- the pika transport's own logic, with fake pika objects ---------------------------


class FakeChannel:
    is_open = True
    is_closed = False
    is_closing = False

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def basic_ack(self, tag: int, multiple: bool) -> None:
        self.calls.append(("ack", tag, multiple))

    def basic_publish(self, exchange: str, routing_key: str, body: bytes,
                      properties: Any) -> None:
        if routing_key == "explode":
            raise pika.exceptions.ShortStringTooLong(routing_key)
        self.calls.append(("publish", exchange, routing_key))


def test_acks_become_one_multiple_ack_for_the_longest_prefix() -> None:
    consumer = _pika._Consumer.__new__(_pika._Consumer)
    consumer._channel, consumer._lost, consumer._queue = FakeChannel(), None, "q"
    consumer._unsettled = dict.fromkeys([1, 2, 3, 4, 5, 6])

    consumer._ack_frames([3, 1, 2, 5])

    assert consumer._channel.calls == [("ack", 3, True), ("ack", 5, False)]
    assert list(consumer._unsettled) == [4, 6]
    with pytest.raises(ValueError, match="not unsettled"):
        consumer._ack_frames([1])


def _confirm(method: type, tag: int, multiple: bool) -> Any:
    return type("Frame", (), {"method": method(delivery_tag=tag, multiple=multiple)})()


def test_confirms_settle_each_batch_in_order() -> None:
    publisher = _pika._Publisher.__new__(_pika._Publisher)
    publisher._channel, publisher._pending, publisher._sequence = FakeChannel(), {}, 0
    batch = _pika._Batch(4)
    future: concurrent.futures.Future[None] = concurrent.futures.Future()
    batch.future = future
    messages = [Publish("x", key, b"", None) for key in ("a", "explode", "b", "c")]

    publisher._send(messages, batch)  # the failed encode takes no delivery tag
    assert sorted(publisher._pending) == [1, 2, 3]
    publisher._on_confirm(_confirm(pika.spec.Basic.Ack, 2, True))
    publisher._on_confirm(_confirm(pika.spec.Basic.Nack, 3, False))

    assert future.done()
    outcomes = batch.finish(None)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], pika.exceptions.ShortStringTooLong)
    assert outcomes[2] is None
    assert outcomes[3] is not None
    assert error_code(outcomes[3]) is ErrorCode.UNKNOWN  # basic.nack from the broker


def test_a_closed_publisher_channel_fails_what_is_unconfirmed() -> None:
    publisher = _pika._Publisher.__new__(_pika._Publisher)
    publisher._channel, publisher._pending, publisher._sequence = FakeChannel(), {}, 0
    publisher._waiting, publisher._opening = [], False
    batch = _pika._Batch(2)
    batch.future = concurrent.futures.Future()
    publisher._send([Publish("x", "a", b"", None), Publish("x", "b", b"", None)], batch)
    publisher._on_confirm(_confirm(pika.spec.Basic.Ack, 1, False))
    closed = pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - no exchange 'x'")

    publisher._on_closed(publisher._channel, closed)

    assert batch.finish(None) == [None, closed]


# -- errors, names, settings ------------------------------------------------------------


@pytest.mark.parametrize(("error", "code"), [
    (pika.exceptions.ProbableAuthenticationError("refused"), ErrorCode.AUTHENTICATION),
    (pika.exceptions.ProbableAccessDeniedError("vhost"), ErrorCode.AUTHENTICATION),
    (pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED"), ErrorCode.CONNECTION),
    (pika.exceptions.ConnectionClosedByBroker(530, "NOT_ALLOWED"), ErrorCode.AUTHENTICATION),
    (pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND"), ErrorCode.NOT_FOUND),
    (pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED - no permission"),
     ErrorCode.AUTHENTICATION),
    (pika.exceptions.ChannelClosedByBroker(
        403, "ACCESS_REFUSED - exchange name 'amq.x' contains reserved prefix 'amq.*'"),
     ErrorCode.CONFIGURATION),
    (pika.exceptions.ChannelClosedByBroker(
        406, "PRECONDITION_FAILED - message size 9 is larger than configured max size 8"),
     ErrorCode.TOO_LARGE),
    (pika.exceptions.ChannelClosedByBroker(
        406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"),
     ErrorCode.CONFIGURATION),
    (pika.exceptions.ConsumerCancelled("queue deleted"), ErrorCode.NOT_FOUND),
    (pika.exceptions.StreamLostError("reset"), ErrorCode.CONNECTION),
    (pika.exceptions.ChannelWrongStateError("closed"), ErrorCode.CONNECTION),
    (ConnectionRefusedError(111, "refused"), ErrorCode.CONNECTION),
    (ConnectTimeout("no answer"), ErrorCode.CONNECTION),
    (TimeoutError("no confirm"), ErrorCode.TIMEOUT),
    (connection_workflow.AMQPConnectionWorkflowFailed([
        connection_workflow.AMQPConnectorSocketConnectError(ConnectionRefusedError()),
        connection_workflow.AMQPConnectorAMQPHandshakeError(
            pika.exceptions.ProbableAuthenticationError("refused")),
    ]), ErrorCode.AUTHENTICATION),
    (ValueError("something else"), ErrorCode.UNKNOWN),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None)
def test_error_table(error: BaseException, code: ErrorCode) -> None:
    assert error_code(error) is code


def test_names_stay_unambiguous_and_short() -> None:
    assert _names.group_queue("a.b", "c") != _names.group_queue("a", "b.c")
    long = _names.group_queue("d" * 200, "g" * 200)
    assert len(long) <= 255
    assert long == _names.group_queue("d" * 200, "g" * 200)
    assert long != _names.group_queue("d" * 200, "g" * 199 + "h")


@pytest.mark.parametrize(("seconds", "milliseconds"), [
    (0.0001, 1), (0.05, 50), (0.099, 99), (0.1, 100), (0.101, 110), (1.5, 1500),
    (1.523, 1600), (30.0, 30000), (99.9, 100000)])
def test_delays_round_up_to_two_significant_digits(seconds: float, milliseconds: int
                                                   ) -> None:
    assert _names.delay_milliseconds(seconds) == milliseconds
    assert milliseconds >= seconds * 1000
    assert milliseconds <= max(seconds * 1000 * 1.1, 1)


def test_the_longest_delay_fits_rabbitmqs_limits() -> None:
    from messaging_rabbitmq._settings import MAX_DELAY
    milliseconds = _names.delay_milliseconds(MAX_DELAY)
    assert _names.delay_queue_expiry(milliseconds) < 2**32


def test_settings_refuse_what_rabbitmq_cannot_do() -> None:
    with pytest.raises(ConfigurationError, match="queue_type"):
        Settings.parse({"queue_type": "stream"})
    with pytest.raises(ConfigurationError, match="classic"):
        Settings.parse({"max_priority": 5})
    with pytest.raises(ConfigurationError, match="request_timeout"):
        Settings.parse({"request_timeout": 0})
    assert Settings.parse({"queue_type": "classic", "max_priority": 4}).capabilities(
    ).priority == 5


def test_connection_parameters_follow_the_url() -> None:
    settings = Settings(heartbeat=15, connect_timeout=3.0)
    (params,) = settings.connection_parameters(parse_url("amqp://u:p%40ss@h:5673/%2Fprod"))
    assert (params.host, params.port, params.virtual_host) == ("h", 5673, "/prod")
    assert (params.credentials.username, params.credentials.password) == ("u", "p@ss")
    assert (params.heartbeat, params.connection_attempts, params.stack_timeout) == (15, 1, 3.0)
    first, second = settings.connection_parameters(parse_url("amqps://a,b:6000/"))
    assert (first.host, first.port, first.virtual_host) == ("a", 5671, "/")
    assert (second.host, second.port) == ("b", 6000)
    assert first.ssl_options is not None
    with pytest.raises(ConfigurationError, match="virtual host"):
        settings.connection_parameters(parse_url("amqp://h/a/b"))


class _Socket:
    """Takes at most ``room`` more bytes, then would block once, and has drained by the
    next call (so a writer that went back to the socket would overtake pika's buffer)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        if self.room <= 0:
            self.room = 10**9
            raise BlockingIOError
        taken = data[:self.room]
        self.room -= len(taken)
        self.sent.append(taken)
        return len(taken)


class _Stream:
    """pika's plaintext transport as far as the direct writes use it."""

    def __init__(self, room: int) -> None:
        self._sock = _Socket(room)
        self.buffered: list[bytes] = []

    def write(self, data: bytes) -> None:  # pika's buffer, which the I/O loop drains
        self.buffered.append(data)


@pytest.mark.parametrize("room", [0, 1, 100_000, 10**9])
def test_direct_writes_keep_the_byte_order_whatever_the_socket_takes(room: int) -> None:
    stream = _Stream(room)
    writes = _pika._DirectWrites(stream)
    frames = [bytes([n % 251]) * size for n, size in enumerate([10, 10_240, 8, 70_000] * 5)]
    for data in frames:
        writes.write(data)
    writes.flush()

    assert b"".join(stream._sock.sent + stream.buffered) == b"".join(frames)
    if room >= sum(map(len, frames)):
        assert stream.buffered == []  # all went straight to the socket
        assert len(stream._sock.sent) > 1  # in runs: the broker starts on the first
