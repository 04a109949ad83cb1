"""Contract 7, priority (where ``capabilities.priority`` > 0 levels): among ready
messages, higher priority first. Priorities run 0..priority-1; one out of that range, or
any priority where the backend has none, raises ``UnsupportedFeature`` and sends nothing.

The messages are all ready before the group's first consumer exists (the group is
declared up front), so a broker that pushes to consumers cannot have handed out a
low-priority message before the high ones arrived.
"""

from __future__ import annotations

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

pytestmark = pytest.mark.messaging_contract("priority")


def test_higher_priority_is_delivered_first(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    messaging_client.admin.create(destination, groups=[group])
    caps = messaging_client.capabilities_for(destination)
    producer = messaging_client.producer()
    if caps.priority == 0:
        with messaging_expect_unsupported("priority"):
            producer.send(destination, b"urgent", priority=1)
        assert messaging_client.admin.depth(destination, group) == 0, "a refused send sent"
        return

    levels = sorted({0, caps.priority // 2, caps.priority - 1})
    for level in levels:  # lowest first: FIFO alone would deliver the wrong order
        for n in range(3):
            producer.send(destination, f"p{level}-{n}".encode(), priority=level)
    expected = [level for level in reversed(levels) for _ in range(3)]

    consumer = messaging_consumer(destination, group, prefetch=1)
    arrived = []
    for _ in expected:
        message = receive_one(consumer, messaging_timing.deliver)
        arrived.append(int(message.body.decode().split("-")[0][1:]))
        message.ack()

    assert arrived == expected, f"priorities arrived as {arrived}"
    assert_quiet(consumer, messaging_timing.quiet, "after all were acked")


def test_priority_out_of_range_is_refused(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    messaging_client.admin.create(destination, groups=[group])
    caps = messaging_client.capabilities_for(destination)
    producer = messaging_client.producer()

    if caps.priority == 0:
        with messaging_expect_unsupported("priority"):
            producer.send(destination, b"any priority", priority=1)
    else:
        with pytest.raises(messaging.UnsupportedFeature):
            producer.send(destination, b"too high", priority=caps.priority)
    with pytest.raises(messaging.ConfigurationError):
        producer.send(destination, b"negative", priority=-1)
    assert messaging_client.admin.depth(destination, group) == 0, "a refused send sent"
