"""A consumer whose backend takes some messages back right after handing them out, as a
Kafka rebalance or a closed RabbitMQ channel does, on the reference engine."""

from __future__ import annotations

import pytest

import messaging
from messaging.driver import Delivery


def take_back_on_receive(monkeypatch: pytest.MonkeyPatch, consumer: messaging.Consumer,
                         bodies: set[bytes]) -> None:
    """From now on, deliveries of ``consumer`` with one of ``bodies`` stop being held
    (``Subscription.holds`` says False) as soon as they are received."""
    subscription = consumer._subscription
    real_receive = subscription.receive_batch
    taken: set[object] = set()

    def receive_then_lose(max_messages: int, timeout: float) -> list[Delivery]:
        deliveries = real_receive(max_messages, timeout)
        taken.update(d.ack_id for d in deliveries if d.body in bodies)
        return deliveries

    monkeypatch.setattr(subscription, "receive_batch", receive_then_lose)
    monkeypatch.setattr(subscription, "holds", lambda ack_id: ack_id not in taken)
