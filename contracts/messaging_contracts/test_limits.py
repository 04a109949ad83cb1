"""Contract 9, limits: a message over ``capabilities.max_message_bytes`` (body plus the
UTF-8 bytes of header names and values) raises ``MessageTooLarge`` before anything is
sent, also when it is one message of a ``send_many`` batch; a message at the limit goes
through intact (the declared limit is honest). ``max_headers``, where declared, is
enforced the same way with ``UnsupportedFeature``.

The oversize bodies are ``bytes(n)``, which the OS hands out lazily, so even a backend with
a very large limit does not make the suite use that much memory.
"""

from __future__ import annotations

import pytest

import messaging
from messaging_contracts.helpers import (
    MakeConsumer,
    MakeGroup,
    Timing,
    assert_quiet,
    receive_one,
)

pytestmark = pytest.mark.messaging_contract("limits")

OCTETS = {"content-type": "application/octet-stream"}  # what a bytes body carries


def _header_bytes(headers: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in headers.items())


def test_oversize_body_is_refused_before_sending(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    limit = messaging_client.capabilities_for(destination).max_message_bytes
    producer = messaging_client.producer()

    with pytest.raises(messaging.MessageTooLarge):
        producer.send(destination, bytes(limit + 1))
    with pytest.raises(messaging.MessageTooLarge):
        producer.send_many(destination, [b"small", bytes(limit + 1), b"also small"])

    assert messaging_client.admin.depth(destination, group) == 0, "a refused message was sent"
    assert_quiet(consumer, messaging_timing.quiet, "after only refused sends")


def test_headers_count_towards_the_limit(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer,
) -> None:
    destination, group = messaging_destination, messaging_group()
    messaging_consumer(destination, group)
    limit = messaging_client.capabilities_for(destination).max_message_bytes
    headers = {"padding": "x" * 64}
    body = bytes(limit - _header_bytes(OCTETS) - _header_bytes(headers) + 1)

    with pytest.raises(messaging.MessageTooLarge):
        messaging_client.producer().send(destination, body, headers=headers)
    assert messaging_client.admin.depth(destination, group) == 0, "a refused message was sent"


def test_message_at_the_limit_goes_through_intact(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    limit = messaging_client.capabilities_for(destination).max_message_bytes
    size = min(limit - _header_bytes(OCTETS), messaging_timing.largest_roundtrip)
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)

    messaging_client.producer().send(destination, body)
    message = receive_one(consumer, messaging_timing.deliver * 2, f"the {size}-byte message")

    assert len(message.body) == size
    assert message.body == body
    message.ack()


def test_header_count_limit_is_enforced(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    most = messaging_client.capabilities_for(destination).max_headers
    producer = messaging_client.producer()
    if most is not None:
        with pytest.raises(messaging.UnsupportedFeature):
            producer.send(destination, b"x", headers={f"h{n}": "v" for n in range(most + 1)})
        assert messaging_client.admin.depth(destination, group) == 0
    allowed = 16 if most is None else max(0, most - 1)  # one is left for content-type
    headers = {f"h{n}": f"v{n}" for n in range(allowed)}
    producer.send(destination, b"x", headers=headers)
    message = receive_one(consumer, messaging_timing.deliver)
    assert {k: v for k, v in message.headers.items() if k in headers} == headers
    message.ack()
