"""Contract 5, replay (where ``capabilities.replay``): a new group can start at the
beginning, and ``seek`` moves a group to ``"beginning"``, ``"end"``, a ``datetime`` or a
message's ``position``. Without replay every ``seek`` raises ``UnsupportedFeature``.
A naive datetime is refused with ``ConfigurationError``.

A position seek is inclusive: ``seek(message.position)`` delivers that message again.
A time before the first message is the beginning, and one after the last is the end:
messages sent after the seek are delivered.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

import messaging
from messaging_contracts.helpers import (
    ExpectUnsupported,
    MakeConsumer,
    MakeGroup,
    Timing,
    assert_quiet,
    bodies,
    describe,
    receive_until,
)

pytestmark = pytest.mark.messaging_contract("replay")

KEY = "one-key"  # one key on one partition: replayed messages come back in order


def _same(got: list[messaging.Message], expected: list[bytes], ordered: bool) -> None:
    if ordered:
        assert bodies(got) == expected, describe(got)
    else:
        assert sorted(bodies(got)) == sorted(expected), describe(got)


def test_new_group_starts_at_the_beginning(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination = messaging_destination
    caps = messaging_client.capabilities_for(destination)
    sent = [f"history-{i}".encode() for i in range(5)]
    messaging_client.producer().send_many(destination, sent, key=KEY)
    late = messaging_consumer(destination, messaging_group())
    if not caps.replay:
        with messaging_expect_unsupported("replay"):
            late.seek("beginning")
        return

    assert_quiet(late, messaging_timing.quiet, "sent before the group existed, before seek")
    late.seek("beginning")
    got = receive_until(late, len(sent), messaging_timing.deliver, ack=True)

    _same(got, sent, caps.ordering == "per_key")
    assert_quiet(late, messaging_timing.quiet, "after the replayed messages")


def test_seek_to_end_skips_the_backlog(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination = messaging_destination
    consumer = messaging_consumer(destination, messaging_group())
    producer = messaging_client.producer()
    producer.send_many(destination, [b"old-1", b"old-2", b"old-3"], key=KEY)
    if not messaging_client.capabilities_for(destination).replay:
        with messaging_expect_unsupported("replay"):
            consumer.seek("end")
        return

    consumer.seek("end")
    # Sent at once, before any receive: the end is where it was when seek returned,
    # however late the consumer joins its group.
    producer.send(destination, b"new", key=KEY)
    got = receive_until(consumer, 1, messaging_timing.deliver, ack=True)
    assert bodies(got) == [b"new"], "only the message sent after the seek"
    assert_quiet(consumer, messaging_timing.quiet, "after the one new message")


def test_seek_to_a_position_rereads_from_there(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination = messaging_destination
    caps = messaging_client.capabilities_for(destination)
    consumer = messaging_consumer(destination, messaging_group())
    sent = [f"event-{i}".encode() for i in range(5)]
    messaging_client.producer().send_many(destination, sent, key=KEY)
    got = receive_until(consumer, len(sent), messaging_timing.deliver, ack=True)
    _same(got, sent, caps.ordering == "per_key")
    if not caps.replay:
        with messaging_expect_unsupported("replay"):
            consumer.seek(got[2].position or "0")
        return

    by_body = {m.body: m for m in got}
    target = by_body[sent[2]].position
    assert isinstance(target, str), "a replayable message needs a position"
    assert target
    consumer.seek(target)
    again = receive_until(consumer, 3, messaging_timing.deliver, ack=True)

    _same(again, sent[2:], caps.ordering == "per_key")
    assert {m.id for m in again} == {by_body[b].id for b in sent[2:]}
    assert_quiet(consumer, messaging_timing.quiet, "before the position")


def test_seek_to_a_time_rereads_what_came_after(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination = messaging_destination
    caps = messaging_client.capabilities_for(destination)
    consumer = messaging_consumer(destination, messaging_group())
    if not caps.replay:
        with messaging_expect_unsupported("replay"):
            consumer.seek(dt.datetime.now(dt.UTC))
        return

    producer = messaging_client.producer()
    before = [b"before-1", b"before-2"]
    after = [b"after-1", b"after-2", b"after-3"]
    producer.send_many(destination, before, key=KEY)
    time.sleep(0.6)  # a gap that clocks with millisecond timestamps can tell apart
    moment = dt.datetime.now(dt.UTC)
    time.sleep(0.6)
    producer.send_many(destination, after, key=KEY)
    first = receive_until(consumer, 5, messaging_timing.deliver, ack=True)
    _same(first, before + after, caps.ordering == "per_key")

    consumer.seek(moment)
    got = receive_until(consumer, len(after), messaging_timing.deliver, ack=True)

    _same(got, after, caps.ordering == "per_key")
    assert_quiet(consumer, messaging_timing.quiet, "from before the seek time")
    # A naive datetime would be read as the local time of whichever machine looked.
    with pytest.raises(messaging.ConfigurationError, match="timezone-aware"):
        consumer.seek(moment.replace(tzinfo=None))


def test_seeks_to_times_outside_the_history_are_its_beginning_and_its_end(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    # Any aware datetime is a time: long before the first message (before 1970 too) is
    # the beginning, and one after the last is the end, after which new messages come
    # as they are sent (a group left waiting for the year 2200 would have stopped).
    destination = messaging_destination
    caps = messaging_client.capabilities_for(destination)
    consumer = messaging_consumer(destination, messaging_group())
    early = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    if not caps.replay:
        with messaging_expect_unsupported("replay"):
            consumer.seek(early)
        return

    producer = messaging_client.producer()
    history = [b"old-1", b"old-2"]
    producer.send_many(destination, history, key=KEY)
    _same(receive_until(consumer, 2, messaging_timing.deliver, ack=True), history,
          caps.ordering == "per_key")

    consumer.seek(early)
    _same(receive_until(consumer, 2, messaging_timing.deliver, ack=True), history,
          caps.ordering == "per_key")

    consumer.seek(dt.datetime(2200, 1, 1, tzinfo=dt.UTC))
    assert_quiet(consumer, messaging_timing.quiet, "after a seek past the last message")
    producer.send(destination, b"new", key=KEY)
    got = receive_until(consumer, 1, messaging_timing.deliver, ack=True)
    assert bodies(got) == [b"new"], describe(got)
