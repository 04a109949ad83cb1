"""Contract 1, at-least-once: a message not acked before its consumer closes, crashes or
lets the visibility timeout pass is delivered again to a member of the same group, with
``attempt`` + 1. An acked message is settled for good.

(The crash case, a member killed with SIGKILL, is ``test_crash``.)
"""

from __future__ import annotations

import threading
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
    receive_one,
    receive_until,
)

pytestmark = pytest.mark.messaging_contract("at-least-once")


def test_first_delivery_has_attempt_one(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    sent = [b"one", b"two", b"three"]
    messaging_client.producer().send_many(destination, sent)

    got = receive_until(consumer, 3, messaging_timing.deliver, ack=True)

    assert sorted(bodies(got)) == sorted(sent), describe(got)
    assert [m.attempt for m in got] == [1, 1, 1]
    assert_quiet(consumer, messaging_timing.quiet, "after every message was acked")
    assert messaging_client.admin.depth(destination, group) == 0


def test_unacked_messages_return_when_the_consumer_closes(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    first = messaging_consumer(destination, group, prefetch=4)
    sent = [f"m{i}".encode() for i in range(4)]
    messaging_client.producer().send_many(destination, sent, key="one-key")

    got = receive_until(first, 4, messaging_timing.deliver)
    assert sorted(bodies(got)) == sent, describe(got)
    acked, unacked = got[:2], got[2:]  # the first ones received: a contiguous prefix
    for message in acked:
        message.ack()
    first.close()

    second = messaging_consumer(destination, group)
    again = receive_until(second, 2, messaging_timing.deliver)

    assert sorted(bodies(again)) == sorted(bodies(unacked)), describe(again)
    previous = {m.body: m for m in unacked}
    for message in again:
        assert message.id == previous[message.body].id
        assert message.attempt == previous[message.body].attempt + 1, describe(again)
        message.ack()
    assert_quiet(second, messaging_timing.quiet, "after the redeliveries were acked")
    assert messaging_client.admin.depth(destination, group) == 0


def test_closing_from_another_thread_ends_iteration_and_gives_back(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    """The way to stop a ``for message in consumer`` loop from outside is ``close()``:
    the loop ends, even when the close lands while a receive waits on the broker, and
    nothing is raised; what was not acked is the group's again."""
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send_many(destination, [b"acked", b"kept"], key="one-key")

    seen: list[messaging.Message] = []
    closer = threading.Timer(0.3, consumer.close)
    started = time.monotonic()
    for message in consumer:  # raises if the close makes the waiting receive fail
        seen.append(message)
        if message.body == b"acked":
            message.ack()
        if len(seen) == 2:
            closer.start()  # the loop is back in receive (nothing left) when it lands
        assert time.monotonic() - started < messaging_timing.deliver, describe(seen)
    closer.join()
    assert sorted(bodies(seen)) == [b"acked", b"kept"], describe(seen)

    second = messaging_consumer(destination, group)
    (again,) = receive_until(second, 1, messaging_timing.deliver, ack=True)
    assert again.body == b"kept", describe([again])
    assert_quiet(second, messaging_timing.quiet, "after the given-back message was acked")


def test_nack_requeue_redelivers_with_attempt_plus_one(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send(destination, b"again", key="k", headers={"h": "v"})

    first = receive_one(consumer, messaging_timing.deliver)
    first.nack(requeue=True)
    second = receive_one(consumer, messaging_timing.deliver)

    assert (second.id, second.body, second.key) == (first.id, b"again", "k")
    assert second.headers.get("h") == "v"
    assert second.attempt == first.attempt + 1 == 2
    second.ack()
    assert_quiet(consumer, messaging_timing.quiet, "after the redelivery was acked")
    assert messaging_client.admin.depth(destination, group) == 0


def test_visibility_timeout_redelivers_to_another_member(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    seconds = messaging_timing.visibility
    if not messaging_client.capabilities_for(destination).visibility_timeout:
        with messaging_expect_unsupported("visibility_timeout"):
            messaging_client.consumer(destination, group, visibility_timeout=seconds)
        return

    slow = messaging_consumer(destination, group, visibility_timeout=seconds, prefetch=1)
    messaging_client.producer().send(destination, b"lease")
    asked_at = time.monotonic()  # the lease starts after this, however slow the reply
    held = receive_one(slow, messaging_timing.deliver)
    other = messaging_consumer(destination, group, visibility_timeout=seconds)

    again = receive_one(other, seconds + messaging_timing.deliver)
    waited = time.monotonic() - asked_at

    assert (again.id, again.body, again.attempt) == (held.id, b"lease", held.attempt + 1)
    assert waited >= seconds - messaging_timing.tolerance, (
        f"redelivered after {waited:.2f} s, before the visibility timeout of {seconds} s"
    )
    again.ack()
    slow.close()  # gives back the stale first delivery: it must not resurrect the message
    assert_quiet(other, max(messaging_timing.quiet, seconds * 1.5),
                 "after the message was acked by the second member")
    assert messaging_client.admin.depth(destination, group) == 0


def test_extend_keeps_a_message_from_other_members(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    caps = messaging_client.capabilities_for(destination)
    seconds = messaging_timing.visibility
    holder = messaging_consumer(
        destination, group, visibility_timeout=seconds if caps.visibility_timeout else None,
        prefetch=1,
    )
    messaging_client.producer().send(destination, b"long job")
    message = receive_one(holder, messaging_timing.deliver)
    other = messaging_consumer(destination, group)

    if not caps.extend:
        with messaging_expect_unsupported("extend"):
            message.extend(seconds * 4)
        message.ack()
        assert messaging_client.admin.depth(destination, group) == 0
        return

    message.extend(seconds * 4)
    if caps.visibility_timeout:
        assert_quiet(other, seconds * 2, "while its visibility was extended")
    message.ack()
    assert_quiet(other, messaging_timing.quiet, "after the extended message was acked")
    assert messaging_client.admin.depth(destination, group) == 0


def test_a_running_handler_keeps_its_message_from_other_members(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    """``run`` extends the messages it holds: a handler that outlives the visibility
    timeout does not see its message delivered to another member meanwhile."""
    destination, group = messaging_destination, messaging_group()
    caps = messaging_client.capabilities_for(destination)
    seconds = messaging_timing.visibility
    if not caps.visibility_timeout:
        # No visibility timeout: nothing to outlive (redelivery comes from a close or a
        # crash only), and the option that would set one is refused.
        with messaging_expect_unsupported("visibility_timeout"):
            messaging_consumer(destination, group, visibility_timeout=seconds)
        return
    if not caps.extend:
        with messaging_expect_unsupported("extend"):
            messaging_client.producer().send(destination, b"held")
            receive_one(messaging_consumer(destination, group), messaging_timing.deliver
                        ).extend(seconds)
        return
    holder = messaging_consumer(destination, group, visibility_timeout=seconds, prefetch=1)
    other = messaging_consumer(destination, group)
    started = threading.Event()
    attempts: list[int] = []

    def long_job(message: messaging.Message) -> None:
        attempts.append(message.attempt)
        started.set()
        time.sleep(seconds * 3)

    stop = threading.Event()
    worker = threading.Thread(target=holder.run, name="contract-long-handler", daemon=True,
                              kwargs={"handler": long_job, "stop_event": stop})
    messaging_client.producer().send(destination, b"long job")
    worker.start()
    try:
        assert started.wait(messaging_timing.deliver), "the worker never got the message"
        assert_quiet(other, seconds * 2.5, "while a running handler held it")
    finally:
        stop.set()
        worker.join(timeout=seconds * 3 + messaging_timing.deliver)
    assert not worker.is_alive(), "run() did not return on stop"
    assert attempts == [1]
    assert_quiet(other, messaging_timing.quiet, "after the long handler acked it")
    assert messaging_client.admin.depth(destination, group) == 0


def test_a_message_is_settled_once(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send_many(destination, [b"a", b"b"])
    first, second = receive_until(consumer, 2, messaging_timing.deliver)

    first.ack()
    first.ack()  # the same settlement twice is a no-op
    with pytest.raises(messaging.AlreadySettled):
        first.nack()
    second.nack(requeue=True)
    with pytest.raises(messaging.AlreadySettled):
        second.ack()
    assert issubclass(messaging.AlreadySettled, messaging.MessagingError)

    again = receive_one(consumer, messaging_timing.deliver)
    again.ack()
    assert (again.id, again.attempt) == (second.id, second.attempt + 1)
    assert_quiet(consumer, messaging_timing.quiet, "after both messages were settled")
    assert messaging_client.admin.depth(destination, group) == 0


def test_batch_ack_settles_every_message(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    sent = [f"batch-{i}".encode() for i in range(25)]
    messaging_client.producer().send_many(destination, sent)

    got = receive_until(consumer, 25, messaging_timing.deliver)
    assert sorted(bodies(got)) == sorted(sent), describe(got)
    assert messaging_client.admin.depth(destination, group) == 25
    consumer.ack_many(got)

    assert messaging_client.admin.depth(destination, group) == 0
    consumer.close()
    later = messaging_consumer(destination, group)
    assert_quiet(later, messaging_timing.quiet, "after a batch ack and a close")
