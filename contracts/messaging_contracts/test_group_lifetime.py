"""Contract 11, group lifetime: a group exists from its first ``consumer()`` call, or
earlier when declared with ``admin.create(dest, groups=[...])``; it receives every message
sent after it exists (a worker that starts late still finds the backlog of a declared
group). Messages sent before a group existed reach it only where ``replay`` holds,
through ``seek``.

Also here: ``admin.create`` is idempotent and keeps what is queued, ``admin.delete`` of a
missing destination is no error, nor is settling messages or closing a consumer whose
destination was deleted under it (a receive then raises ``DestinationNotFound``), and
``depth`` counts ready, in-flight and delayed messages not yet acked by the group.
"""

from __future__ import annotations

import contextlib
import time

import pytest

import messaging
from messaging.message import Settlement
from messaging_contracts.helpers import (
    ExpectUnsupported,
    MakeConsumer,
    MakeDestination,
    MakeGroup,
    Timing,
    assert_quiet,
    bodies,
    describe,
    receive_until,
    unique_name,
)

pytestmark = pytest.mark.messaging_contract("group-lifetime")


def test_declared_group_finds_its_backlog(
    *, messaging_client: messaging.Client, messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    group = messaging_group()
    destination = messaging_make_destination(groups=[group])
    sent = [f"backlog-{i}".encode() for i in range(5)]
    messaging_client.producer().send_many(destination, sent)
    assert messaging_client.admin.depth(destination, group) == len(sent)

    late_worker = messaging_consumer(destination, group)
    got = receive_until(late_worker, len(sent), messaging_timing.deliver, ack=True)

    assert sorted(bodies(got)) == sorted(sent), describe(got)
    assert {m.attempt for m in got} == {1}
    assert messaging_client.admin.depth(destination, group) == 0


def test_group_exists_from_its_first_consumer(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    messaging_consumer(destination, group).close()  # joined once, then gone
    sent = [b"while-away-1", b"while-away-2", b"while-away-3"]
    messaging_client.producer().send_many(destination, sent)
    assert messaging_client.admin.depth(destination, group) == len(sent)

    returning = messaging_consumer(destination, group)
    got = receive_until(returning, len(sent), messaging_timing.deliver, ack=True)

    assert sorted(bodies(got)) == sorted(sent), describe(got)
    assert messaging_client.admin.depth(destination, group) == 0


def _busy_elsewhere(client: messaging.Client, make_destination: MakeDestination,
                    make_consumer: MakeConsumer, group: str, timing: Timing) -> None:
    """Make ``group`` consume another destination, as one service's group reading two
    queues or topics does (on Kafka: one consumer group with a live member on another
    topic), until the test ends."""
    elsewhere = make_destination(groups=[group], suffix="elsewhere")
    client.producer().send(elsewhere, b"elsewhere")
    got = receive_until(make_consumer(elsewhere, group), 1, timing.deliver, ack=True)
    assert bodies(got) == [b"elsewhere"], describe(got)


def test_a_group_declared_while_busy_elsewhere_finds_its_backlog(
    *, messaging_client: messaging.Client, messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    group = messaging_group()
    _busy_elsewhere(messaging_client, messaging_make_destination, messaging_consumer, group,
                    messaging_timing)
    destination = messaging_make_destination(groups=[group])
    sent = [b"declared-1", b"declared-2"]
    messaging_client.producer().send_many(destination, sent)
    assert messaging_client.admin.depth(destination, group) == len(sent)

    got = receive_until(messaging_consumer(destination, group), len(sent),
                        messaging_timing.deliver, ack=True)

    assert sorted(bodies(got)) == sent, describe(got)


def test_a_group_busy_elsewhere_exists_from_its_first_consumer(
    *, messaging_client: messaging.Client, messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    group = messaging_group()
    _busy_elsewhere(messaging_client, messaging_make_destination, messaging_consumer, group,
                    messaging_timing)
    destination = messaging_make_destination()
    messaging_consumer(destination, group).close()  # made, and gone before it read
    sent = [b"while-away-1", b"while-away-2"]
    messaging_client.producer().send_many(destination, sent)

    got = receive_until(messaging_consumer(destination, group), len(sent),
                        messaging_timing.deliver, ack=True)

    assert sorted(bodies(got)) == sent, describe(got)


def test_new_group_misses_earlier_messages_unless_it_seeks(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination = messaging_destination
    caps = messaging_client.capabilities_for(destination)
    early, late = messaging_group(), messaging_group()
    messaging_consumer(destination, early)
    producer = messaging_client.producer()
    producer.send_many(destination, [b"before-1", b"before-2", b"before-3"], key="k")
    if not caps.fan_out:
        with messaging_expect_unsupported("fan_out"):
            messaging_client.consumer(destination, late)
        return

    newcomer = messaging_consumer(destination, late)
    assert messaging_client.admin.depth(destination, late) == 0
    assert_quiet(newcomer, messaging_timing.quiet, "sent before the group existed")
    producer.send(destination, b"after", key="k")
    got = receive_until(newcomer, 1, messaging_timing.deliver, ack=True)
    assert bodies(got) == [b"after"]
    assert_quiet(newcomer, messaging_timing.quiet, "beyond the one sent after it existed")
    assert messaging_client.admin.depth(destination, early) == 4

    if caps.replay:
        newcomer.seek("beginning")
        again = receive_until(newcomer, 4, messaging_timing.deliver, ack=True)
        assert sorted(bodies(again)) == [b"after", b"before-1", b"before-2", b"before-3"]


def test_create_is_idempotent_and_keeps_messages(
    *, messaging_client: messaging.Client, messaging_group: MakeGroup,
    messaging_make_destination: MakeDestination, messaging_consumer: MakeConsumer,
    messaging_timing: Timing,
) -> None:
    group = messaging_group()
    destination = messaging_make_destination(groups=[group])
    messaging_client.producer().send_many(destination, [b"kept-1", b"kept-2"])

    messaging_client.admin.create(destination)
    messaging_client.admin.create(destination, groups=[group])

    assert messaging_client.admin.depth(destination, group) == 2
    got = receive_until(messaging_consumer(destination, group), 2, messaging_timing.deliver,
                        ack=True)
    assert sorted(bodies(got)) == [b"kept-1", b"kept-2"]


def test_delete_is_idempotent(messaging_client: messaging.Client) -> None:
    name = unique_name("mc-deleted")
    messaging_client.admin.create(name)
    messaging_client.admin.delete(name)
    messaging_client.admin.delete(name)
    messaging_client.admin.delete(unique_name("mc-never-created"))


def test_closing_after_the_destination_was_deleted_is_no_error(
    *, messaging_client: messaging.Client, messaging_group: MakeGroup,
    messaging_timing: Timing,
) -> None:
    # A service stopping after its destination was deleted (a teardown, a migration)
    # holds messages that went with the destination: nothing to give back, no error.
    group, destination = messaging_group(), unique_name("mc-deleted-under")
    messaging_client.admin.create(destination, groups=[group])
    messaging_client.producer().send_many(destination, [b"held-1", b"held-2"])
    consumer = messaging_client.consumer(destination, group)
    held = receive_until(consumer, 2, messaging_timing.deliver)
    assert sorted(bodies(held)) == [b"held-1", b"held-2"], describe(held)

    messaging_client.admin.delete(destination)
    consumer.close()

    assert consumer.closed
    assert {m.settlement for m in held} == {Settlement.RELEASED}


def test_receiving_after_the_destination_was_deleted_raises_not_found(
    *, messaging_client: messaging.Client, messaging_group: MakeGroup,
    messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    # A worker whose destination was deleted under it is told so, and keeps being told,
    # rather than waiting forever for messages that cannot come.
    group, destination = messaging_group(), unique_name("mc-receive-deleted")
    messaging_client.admin.create(destination, groups=[group])
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send(destination, b"before")
    assert bodies(receive_until(consumer, 1, messaging_timing.deliver, ack=True)) == [b"before"]

    messaging_client.admin.delete(destination)
    # The backend may take a moment to notice (Kafka: its next metadata refresh).
    deadline, told = time.monotonic() + messaging_timing.deliver, False
    while not told and time.monotonic() < deadline:
        try:
            consumer.receive(1, timeout=messaging_timing.quiet)
        except messaging.DestinationNotFound:
            told = True
    assert told, f"receive still waits {messaging_timing.deliver} s after the deletion"
    with pytest.raises(messaging.DestinationNotFound):
        consumer.receive(1, timeout=messaging_timing.quiet)


def test_settling_after_the_destination_was_deleted_is_no_error(
    *, messaging_client: messaging.Client, messaging_group: MakeGroup,
    messaging_timing: Timing,
) -> None:
    # Handlers still finishing during a teardown: their messages went with the
    # destination, so an ack or a give-back has nothing left to do, on every backend.
    group, destination = messaging_group(), unique_name("mc-settled-under")
    messaging_client.admin.create(destination, groups=[group])
    messaging_client.producer().send_many(destination, [b"held-1", b"held-2", b"held-3"])
    consumer = messaging_client.consumer(destination, group)
    held = sorted(receive_until(consumer, 3, messaging_timing.deliver), key=lambda m: m.body)
    assert bodies(held) == [b"held-1", b"held-2", b"held-3"], describe(held)

    messaging_client.admin.delete(destination)
    held[0].ack()
    # Once the consumer has seen the deletion too (RabbitMQ's broker cancels it, and its
    # deliveries become stale), settling is still no error.
    with contextlib.suppress(messaging.DestinationNotFound):
        assert consumer.receive(1, timeout=messaging_timing.quiet) == []
    held[1].nack()
    consumer.ack_many(held[2:])
    consumer.close()

    assert [m.settlement for m in held] == [Settlement.ACKED, Settlement.NACKED,
                                            Settlement.ACKED]


def test_depth_counts_everything_not_yet_acked(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    caps = messaging_client.capabilities_for(destination)
    producer = messaging_client.producer()
    producer.send_many(destination, [b"a", b"b", b"c"])
    delayed = 0
    if caps.max_delay is not None:
        producer.send(destination, b"delayed", delay=min(30.0, caps.max_delay))
        delayed = 1
    admin = messaging_client.admin
    assert admin.depth(destination, group) == 3 + delayed

    got = receive_until(consumer, 3, messaging_timing.deliver)
    assert sorted(bodies(got)) == [b"a", b"b", b"c"]
    assert admin.depth(destination, group) == 3 + delayed, "in-flight messages must count"
    got[0].ack()
    assert admin.depth(destination, group) == 2 + delayed
    consumer.ack_many(got[1:])
    assert admin.depth(destination, group) == delayed
