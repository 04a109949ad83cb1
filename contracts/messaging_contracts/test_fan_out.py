"""Contract 3, fan-out: every group receives every message.

Where ``capabilities.fan_out`` is False a destination has one group, and asking for a
second one raises ``UnsupportedFeature`` at the call (``consumer()`` or
``admin.create(groups=...)``) instead of silently sharing or splitting the messages.
"""

from __future__ import annotations

import pytest

import messaging
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
)

pytestmark = pytest.mark.messaging_contract("fan-out")


def test_every_group_receives_every_message(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination = messaging_destination
    billing, analytics = messaging_group(), messaging_group()
    first = messaging_consumer(destination, billing)
    if not messaging_client.capabilities_for(destination).fan_out:
        with messaging_expect_unsupported("fan_out"):
            messaging_client.consumer(destination, analytics)
        return

    second = messaging_consumer(destination, analytics)
    sent = [f"event-{i}".encode() for i in range(10)]
    messaging_client.producer().send_many(destination, sent)

    got_first = receive_until(first, len(sent), messaging_timing.deliver, ack=True)
    assert sorted(bodies(got_first)) == sorted(sent), describe(got_first)
    assert messaging_client.admin.depth(destination, billing) == 0
    assert messaging_client.admin.depth(destination, analytics) == len(sent), (
        "acking in one group settled messages of another"
    )
    got_second = receive_until(second, len(sent), messaging_timing.deliver, ack=True)
    assert sorted(bodies(got_second)) == sorted(sent), describe(got_second)
    assert {m.attempt for m in got_first + got_second} == {1}
    assert {m.id for m in got_first} == {m.id for m in got_second}
    assert_quiet(first, messaging_timing.quiet / 2, "in the first group after acking")
    assert_quiet(second, messaging_timing.quiet / 2, "in the second group after acking")
    assert messaging_client.admin.depth(destination, analytics) == 0


def test_declared_groups_each_receive_every_message(
    *, messaging_client: messaging.Client, messaging_make_destination: MakeDestination,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    groups = [messaging_group() for _ in range(3)]
    if not messaging_client.capabilities.fan_out:
        destination = messaging_make_destination(groups=groups[:1])
        with messaging_expect_unsupported("fan_out"):
            messaging_client.admin.create(destination, groups=groups)
        return

    destination = messaging_make_destination(groups=groups)
    sent = [f"declared-{i}".encode() for i in range(5)]
    messaging_client.producer().send_many(destination, sent)
    for group in groups:
        assert messaging_client.admin.depth(destination, group) == len(sent), group

    for group in groups:
        got = receive_until(messaging_consumer(destination, group), len(sent),
                            messaging_timing.deliver, ack=True)
        assert sorted(bodies(got)) == sorted(sent), f"group {group}: {describe(got)}"
        assert messaging_client.admin.depth(destination, group) == 0
