"""Receiving and acking what a destination holds, for tests that check what came."""

from __future__ import annotations

import messaging


def drain(consumer: messaging.Consumer, count: int, batch: int = 10
          ) -> list[messaging.Message]:
    """Receive and ack, ``batch`` at a time, until ``count`` messages came or 50 receives
    of up to half a second each were made."""
    got: list[messaging.Message] = []
    for _ in range(50):
        if len(got) >= count:
            break
        received = consumer.receive(max_messages=batch, timeout=0.5)
        consumer.ack_many(received)
        got += received
    return got
