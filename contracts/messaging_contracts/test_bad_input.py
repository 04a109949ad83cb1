"""Bad input is part of the contract too: it is refused at the call with the documented
error, and nothing is sent or settled.

* an unknown option (keyword or URL query) -> ``ConfigurationError``, before connecting;
* an empty or illegal destination or group name, or a dead-letter destination that is
  the destination consumed -> ``ConfigurationError``;
* a value the codec cannot encode -> ``SerializationError``, nothing of the batch sent;
* a ``nack`` delay over ``max_delay`` (any delay where there is none) ->
  ``UnsupportedFeature``, and the message stays unsettled;
* headers that are not str -> str, a key that is not a non-empty str, an unknown
  ``admin.create`` option, nonsense receive arguments, and a duration that is not a
  finite number of seconds (NaN, infinity) -> ``ConfigurationError``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import messaging
from messaging.message import Settlement
from messaging_contracts.helpers import (
    MakeConsumer,
    MakeGroup,
    Timing,
    assert_quiet,
    receive_one,
)

pytestmark = pytest.mark.messaging_contract("bad-input")


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def test_unknown_option_is_refused_before_connecting(
    *, messaging_url: str, messaging_connect_options: dict[str, Any],
) -> None:
    with pytest.raises(messaging.ConfigurationError, match="no_such_option"):
        messaging.connect(messaging_url, no_such_option=1, **messaging_connect_options)
    with pytest.raises(messaging.ConfigurationError, match="no_such_option"):
        messaging.connect(_with_query(messaging_url, "no_such_option=1"),
                          **messaging_connect_options)


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "x" * 250],
                         ids=["empty", "space", "slash", "too-long"])
def test_bad_names_are_refused(
    *, name: str, messaging_client: messaging.Client, messaging_destination: str,
) -> None:
    producer = messaging_client.producer()
    with pytest.raises(messaging.ConfigurationError):
        producer.send(name, b"x")
    with pytest.raises(messaging.ConfigurationError):
        producer.send_many(name, [b"x"])
    with pytest.raises(messaging.ConfigurationError):
        messaging_client.consumer(name, "g")
    with pytest.raises(messaging.ConfigurationError):
        messaging_client.consumer(messaging_destination, name)
    with pytest.raises(messaging.ConfigurationError):
        messaging_client.admin.create(name)
    with pytest.raises(messaging.ConfigurationError):
        messaging_client.admin.depth(messaging_destination, name)


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), {"when": object()}],
                         ids=["object", "set", "nan", "nested-object"])
def test_unserialisable_value_sends_nothing(
    *, value: object, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    producer = messaging_client.producer()

    with pytest.raises(messaging.SerializationError):
        producer.send(destination, value)
    with pytest.raises(messaging.SerializationError):
        producer.send_many(destination, [b"fine", value, b"also fine"])

    assert messaging_client.admin.depth(destination, group) == 0, "part of a refused batch sent"
    assert_quiet(consumer, messaging_timing.quiet, "after only refused sends")


def test_nack_delay_over_max_delay_is_refused(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    max_delay = messaging_client.capabilities_for(destination).max_delay
    too_long = 1.0 if max_delay is None else max_delay + 1.0
    producer = messaging_client.producer()
    with pytest.raises(messaging.UnsupportedFeature):
        producer.send(destination, b"later", delay=too_long)
    assert messaging_client.admin.depth(destination, group) == 0, "a refused send sent"

    producer.send(destination, b"retry")
    message = receive_one(consumer, messaging_timing.deliver)
    with pytest.raises(messaging.UnsupportedFeature):
        message.nack(requeue=True, delay=too_long)
    with pytest.raises(messaging.ConfigurationError):
        message.nack(requeue=True, delay=-1.0)

    message.ack()  # still unsettled: the refused nacks did nothing
    assert messaging_client.admin.depth(destination, group) == 0
    assert_quiet(consumer, messaging_timing.quiet, "after the ack")


def test_headers_must_be_str_to_str(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer,
) -> None:
    destination, group = messaging_destination, messaging_group()
    messaging_consumer(destination, group)
    producer = messaging_client.producer()
    for headers in ({"count": 1}, {"raw": b"bytes"}, {"": "empty name"}):
        with pytest.raises(messaging.ConfigurationError):
            producer.send(destination, b"x", headers=headers)  # type: ignore[arg-type]
    assert messaging_client.admin.depth(destination, group) == 0, "a refused send sent"


def test_a_key_is_a_non_empty_str(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer,
) -> None:
    """``key=""`` would mean three things on three brokers (a key on Kafka, no key on
    RabbitMQ, nothing SQS can carry): it is refused, and ``None`` means no key."""
    destination, group = messaging_destination, messaging_group()
    messaging_consumer(destination, group)
    producer = messaging_client.producer()
    with pytest.raises(messaging.ConfigurationError):
        producer.send(destination, b"x", key=42)  # type: ignore[arg-type]
    with pytest.raises(messaging.ConfigurationError, match="key"):
        producer.send(destination, b"x", key="")
    with pytest.raises(messaging.ConfigurationError, match="key"):
        producer.send_many(destination, [b"x"], key="")
    with pytest.raises(messaging.ConfigurationError, match="key"):
        producer.send_many(destination, [b"fine", messaging.Record(b"x", key="")])
    assert messaging_client.admin.depth(destination, group) == 0, "a refused send sent"


def test_unknown_create_option_is_refused(
    *, messaging_client: messaging.Client, messaging_destination: str,
) -> None:
    with pytest.raises(messaging.ConfigurationError, match="no_such_option"):
        messaging_client.admin.create(messaging_destination, no_such_option=True)
    with pytest.raises(messaging.ConfigurationError):
        messaging_client.admin.create(messaging_destination, partitions=0)


def test_send_many_refuses_one_value_for_many(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer,
) -> None:
    # A str or bytes was sent as one message per character or byte, a dict as one per
    # key, and None raised a bare TypeError.
    group = messaging_group()
    messaging_consumer(messaging_destination, group)
    producer = messaging_client.producer()
    for values in ("abc", b"abc", {"id": 7}, None):
        with pytest.raises(messaging.ConfigurationError, match="send_many"):
            producer.send_many(messaging_destination, values)  # type: ignore[arg-type]
    assert messaging_client.admin.depth(messaging_destination, group) == 0, "a refused send sent"


def test_settling_refuses_what_is_not_a_message_of_this_consumer(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    # Another consumer's message was "acked" through this one: its ack id meant nothing
    # (or another record) here, and the message looked acked while its group delivered
    # it again. ack_many(message) and ack_many(None) raised bare TypeErrors, and
    # nack(requeue=None) dropped the message as a rejection.
    destination = messaging_destination
    mine = messaging_consumer(destination, messaging_group())
    theirs = messaging_consumer(destination, messaging_group())
    messaging_client.producer().send(destination, b"mine and theirs")
    message = receive_one(mine, messaging_timing.deliver)
    other = receive_one(theirs, messaging_timing.deliver)
    for wrong in (message, None, [None], [message, other]):
        with pytest.raises(messaging.ConfigurationError, match=r"ack_many|another consumer"):
            mine.ack_many(wrong)  # type: ignore[arg-type]
    with pytest.raises(messaging.ConfigurationError, match="requeue"):
        message.nack(requeue=None)  # type: ignore[arg-type]
    assert message.settlement is other.settlement is Settlement.PENDING
    mine.ack_many([message])
    theirs.ack_many([other])


def test_create_refuses_groups_that_are_not_a_list_of_names(
    *, messaging_client: messaging.Client, messaging_destination: str,
) -> None:
    # A lone string would declare a group per letter; None (for "no groups") raised a
    # bare TypeError from the iteration.
    for groups in ("billing", None, 7, ["billing", ""]):
        with pytest.raises(messaging.ConfigurationError, match="group"):
            messaging_client.admin.create(messaging_destination, groups=groups)  # type: ignore[arg-type]


def test_nonsense_receive_arguments_are_refused(
    *, messaging_destination: str, messaging_group: MakeGroup, messaging_consumer: MakeConsumer,
) -> None:
    consumer = messaging_consumer(messaging_destination, messaging_group())
    with pytest.raises(messaging.ConfigurationError):
        consumer.receive(max_messages=0)
    with pytest.raises(messaging.ConfigurationError):
        consumer.receive(max_messages=1, timeout=-1.0)


def test_a_dead_letter_destination_must_differ_from_the_one_consumed(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer,
) -> None:
    """Letters sent back to the destination they failed on would arrive as new messages
    with attempt 1, fail again and be lettered again, forever."""
    destination, group = messaging_destination, messaging_group()
    with pytest.raises(messaging.ConfigurationError, match="dead_letter"):
        messaging_client.consumer(destination, group, dead_letter=destination)
    consumer = messaging_consumer(destination, group)
    stop = threading.Event()
    stop.set()  # were it accepted, the run would end at once
    with pytest.raises(messaging.ConfigurationError, match="dead_letter"):
        consumer.run(lambda message: None, dead_letter=destination, stop_event=stop)
    assert not consumer.closed, "a refused run must leave the consumer as it was"


def test_huge_receive_and_prefetch_are_only_upper_bounds(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    """Not bad input: ``max_messages`` and ``prefetch`` bound what is handed out or held,
    so numbers past a client library's own limits (confluent-kafka's million a call,
    AMQP's 16-bit prefetch) take what there is instead of failing."""
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group, prefetch=2**31)
    messaging_client.producer().send_many(destination, [b"a", b"b"])
    got: list[messaging.Message] = []
    deadline = time.monotonic() + messaging_timing.deliver
    while len(got) < 2 and time.monotonic() < deadline:
        got += consumer.receive(max_messages=2**31, timeout=0.5)
    assert sorted(m.body for m in got) == [b"a", b"b"]
    consumer.ack_many(got)
    assert_quiet(consumer, messaging_timing.quiet, "after both were acked")


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), "1"], ids=["nan", "inf", "str"])
def test_durations_must_be_finite_numbers_of_seconds(
    *, seconds: Any, messaging_url: str, messaging_connect_options: dict[str, Any],
    messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    """NaN compares false with every bound, so a plain ``< 0`` check lets it through to a
    driver, which then fails with a native error or waits forever. Every duration is
    refused with ``ConfigurationError`` at the call, and nothing is sent or settled."""
    if not isinstance(seconds, str):  # a str option is parsed, as a URL query's value is
        with pytest.raises(messaging.ConfigurationError, match="connect_timeout"):
            messaging.connect(messaging_url, **{**messaging_connect_options,
                                                "connect_timeout": seconds})
    with pytest.raises(messaging.ConfigurationError, match="connect_timeout"):
        messaging.connect(_with_query(messaging_url, "connect_timeout=nan"),
                          **messaging_connect_options)

    destination, group = messaging_destination, messaging_group()
    with pytest.raises(messaging.ConfigurationError, match="visibility_timeout"):
        messaging_client.consumer(destination, group, visibility_timeout=seconds)
    consumer = messaging_consumer(destination, group)
    with pytest.raises(messaging.ConfigurationError, match="timeout"):
        consumer.receive(max_messages=1, timeout=seconds)
    producer = messaging_client.producer()
    with pytest.raises(messaging.ConfigurationError, match="delay"):
        producer.send(destination, b"never", delay=seconds)
    assert messaging_client.admin.depth(destination, group) == 0, "a refused send sent"

    producer.send(destination, b"held")
    message = receive_one(consumer, messaging_timing.deliver)
    with pytest.raises(messaging.ConfigurationError, match="delay"):
        message.nack(requeue=True, delay=seconds)
    message.ack()  # still unsettled: the refused nack did nothing
    assert messaging_client.admin.depth(destination, group) == 0
