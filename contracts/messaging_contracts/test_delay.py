"""Contract 6, delay (up to ``capabilities.max_delay``): a delayed message is not
delivered before its delay, on ``send(delay=...)`` and on ``nack(delay=...)``.

Where ``max_delay`` is None any delay raises ``UnsupportedFeature`` at the call and
nothing is sent or settled; a delay over ``max_delay`` is refused the same way
(``test_bad_input``). ``delay=0`` means no delay and works everywhere.
"""

from __future__ import annotations

import time

import pytest

import messaging
from messaging_contracts.helpers import (
    ExpectUnsupported,
    MakeConsumer,
    MakeGroup,
    Timing,
    assert_quiet,
    receive_one,
)

pytestmark = pytest.mark.messaging_contract("delay")


def _delay(caps: messaging.Capabilities, timing: Timing) -> float:
    assert caps.max_delay is not None
    return min(timing.delay, caps.max_delay)


def test_delayed_send_is_not_delivered_early(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    caps = messaging_client.capabilities_for(destination)
    consumer = messaging_consumer(destination, group)
    producer = messaging_client.producer()
    if caps.max_delay is None:
        with messaging_expect_unsupported("delay"):
            producer.send(destination, b"later", delay=1.0)
        assert messaging_client.admin.depth(destination, group) == 0, "a refused send sent"
        return

    delay = _delay(caps, messaging_timing)
    # A first receive may include joining the group (Kafka), which on a loaded machine
    # can outlast the delay; then both messages would rightly be due in either order.
    producer.send(destination, b"warm-up")
    receive_one(consumer, messaging_timing.deliver, "the warm-up message").ack()
    started = time.monotonic()
    producer.send(destination, b"later", delay=delay)
    producer.send(destination, b"now")

    first = receive_one(consumer, messaging_timing.deliver, "the undelayed message")
    assert first.body == b"now", "the delayed message overtook an undelayed one"
    first.ack()
    late = receive_one(consumer, delay + messaging_timing.deliver, "the delayed message")
    waited = time.monotonic() - started
    assert late.body == b"later"
    assert late.attempt == 1
    assert waited >= delay - messaging_timing.tolerance, (
        f"delivered {waited:.2f} s after send, before its delay of {delay} s"
    )
    late.ack()
    assert messaging_client.admin.depth(destination, group) == 0


def test_nack_with_delay_is_not_redelivered_early(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    caps = messaging_client.capabilities_for(destination)
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send(destination, b"retry me")
    message = receive_one(consumer, messaging_timing.deliver)
    if caps.max_delay is None:
        with messaging_expect_unsupported("delay"):
            message.nack(requeue=True, delay=1.0)
        message.ack()  # the refused nack left it unsettled
        assert messaging_client.admin.depth(destination, group) == 0
        return

    delay = _delay(caps, messaging_timing)
    started = time.monotonic()
    message.nack(requeue=True, delay=delay)
    again = receive_one(consumer, delay + messaging_timing.deliver, "the delayed redelivery")
    waited = time.monotonic() - started

    assert (again.id, again.body, again.attempt) == (message.id, b"retry me", 2)
    assert waited >= delay - messaging_timing.tolerance, (
        f"redelivered {waited:.2f} s after nack, before its delay of {delay} s"
    )
    again.ack()
    assert messaging_client.admin.depth(destination, group) == 0


def test_zero_delay_means_no_delay(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send(destination, b"at once", delay=0)
    message = receive_one(consumer, messaging_timing.deliver)
    assert message.body == b"at once"
    message.nack(requeue=True, delay=0)
    again = receive_one(consumer, messaging_timing.deliver, "the redelivery after nack(delay=0)")
    assert (again.id, again.attempt) == (message.id, 2)
    again.ack()
    assert_quiet(consumer, messaging_timing.quiet, "after the ack")
