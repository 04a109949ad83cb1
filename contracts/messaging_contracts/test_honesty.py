"""Contract 10, honesty: a feature a backend lacks raises ``UnsupportedFeature`` at the
call, nothing is silently ignored, and ``Capabilities`` is well-formed data whose flags
match what the calls do. Emulated features are declared in ``capabilities.emulated``, by
the names listed in ``FEATURES``, and each one named there is also claimed.

``test_each_feature_is_claimed_or_refused`` is the backend's feature matrix: one test id
per optional feature, ``passed`` where the flag claims it (and the call works), and
``unsupported`` where it does not (and the call raised, sending nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

import messaging
from messaging_contracts.helpers import (
    ExpectUnsupported,
    MakeConsumer,
    MakeGroup,
    Timing,
    assert_quiet,
    bodies,
    receive_one,
    receive_until,
)

pytestmark = pytest.mark.messaging_contract("honesty")

FEATURES = ("delay", "priority", "dedup", "replay", "visibility_timeout", "extend")
EMULATION_NAMES = {"ordering", "fan_out", "replay", "delay", "priority", "dead_letter",
                   "dedup", "visibility_timeout", "extend", "durable"}


def claims(caps: messaging.Capabilities, feature: str) -> bool:
    """Whether ``caps`` claims ``feature`` (a name of FEATURES or EMULATION_NAMES)."""
    return {
        "ordering": caps.ordering == "per_key",
        "fan_out": caps.fan_out,
        "replay": caps.replay,
        "delay": caps.max_delay is not None,
        "priority": caps.priority > 0,
        "dead_letter": caps.dead_letter == "emulated",
        "dedup": caps.dedup,
        "visibility_timeout": caps.visibility_timeout,
        "extend": caps.extend,
        "durable": caps.durable,
    }[feature]


def test_capabilities_are_well_formed(
    *, messaging_client: messaging.Client, messaging_destination: str,
) -> None:
    for caps in (messaging_client.capabilities,
                 messaging_client.capabilities_for(messaging_destination)):
        assert isinstance(caps, messaging.Capabilities)
        with pytest.raises(dataclasses.FrozenInstanceError):
            caps.fan_out = not caps.fan_out  # type: ignore[misc]
        assert caps.ordering in ("none", "per_key")
        assert caps.dead_letter in ("native", "emulated")
        for flag in ("fan_out", "replay", "dedup", "visibility_timeout", "extend", "durable"):
            assert isinstance(getattr(caps, flag), bool), flag
        assert caps.max_delay is None or (
            isinstance(caps.max_delay, int | float) and caps.max_delay > 0), caps.max_delay
        assert isinstance(caps.priority, int)
        assert not isinstance(caps.priority, bool)
        assert caps.priority >= 0
        assert isinstance(caps.max_message_bytes, int)
        assert caps.max_message_bytes > 0
        assert caps.max_headers is None or caps.max_headers >= 1
        assert isinstance(caps.max_batch, int)
        assert caps.max_batch >= 1
        if caps.dedup:
            assert caps.dedup_window is not None
            assert caps.dedup_window > 0
        else:
            assert caps.dedup_window is None, "a dedup window without dedup"
        assert isinstance(caps.emulated, frozenset)
        unknown = set(caps.emulated) - EMULATION_NAMES
        assert not unknown, f"emulated names no user can look up: {sorted(unknown)}"
        for feature in caps.emulated:
            assert claims(caps, feature), f"{feature!r} is declared emulated but not claimed"


@pytest.mark.parametrize("feature", FEATURES)
def test_each_feature_is_claimed_or_refused(
    *, feature: str, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    caps = messaging_client.capabilities_for(destination)
    consumer = messaging_consumer(destination, group)
    producer = messaging_client.producer()
    admin = messaging_client.admin
    claimed = claims(caps, feature)

    if feature == "extend":
        producer.send(destination, b"held")
        message = receive_one(consumer, messaging_timing.deliver)
        if claimed:
            message.extend(5.0)
        else:
            with messaging_expect_unsupported(feature):
                message.extend(5.0)
        message.ack()
        assert admin.depth(destination, group) == 0
        return

    calls: dict[str, Callable[[], object]] = {
        "delay": lambda: producer.send(destination, b"x", delay=min(0.1, caps.max_delay or 1)),
        "priority": lambda: producer.send(destination, b"x", priority=max(1, caps.priority) - 1
                                          if claimed else 1),
        "dedup": lambda: producer.send(destination, b"x", dedup_id="dedup-1"),
        "replay": lambda: consumer.seek("end"),
        "visibility_timeout": lambda: messaging_consumer(destination, group,
                                                         visibility_timeout=30.0),
    }
    sends = feature in ("delay", "priority", "dedup")
    if not claimed:
        with messaging_expect_unsupported(feature):
            calls[feature]()
        assert admin.depth(destination, group) == 0, "a refused call sent a message"
        return

    calls[feature]()
    if sends:
        message = receive_one(consumer, messaging_timing.deliver, f"the message sent with "
                              f"{feature}")
        assert message.body == b"x"
        message.ack()
    assert admin.depth(destination, group) == 0


def test_dedup_drops_a_repeated_dedup_id(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
    messaging_expect_unsupported: ExpectUnsupported,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    producer = messaging_client.producer()
    if not messaging_client.capabilities_for(destination).dedup:
        with messaging_expect_unsupported("dedup"):
            producer.send(destination, b"first", dedup_id="order-7")
        assert messaging_client.admin.depth(destination, group) == 0
        return

    producer.send(destination, b"first", dedup_id="order-7")
    producer.send(destination, b"repeat", dedup_id="order-7")
    producer.send(destination, b"other", dedup_id="order-8")

    got = receive_until(consumer, 2, messaging_timing.deliver, ack=True)
    assert sorted(bodies(got)) == [b"first", b"other"]
    assert_quiet(consumer, messaging_timing.quiet, "for the repeated dedup_id")


def test_every_error_is_a_messaging_error() -> None:
    names = ["ConnectionFailed", "AuthenticationFailed", "DestinationNotFound",
             "MessageTooLarge", "UnsupportedFeature", "ConfigurationError",
             "SerializationError", "Timeout", "AlreadySettled"]
    for name in names:
        error = getattr(messaging, name)
        assert issubclass(error, messaging.MessagingError), name
    assert issubclass(messaging.MessagingError, Exception)
