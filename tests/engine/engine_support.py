"""Small helpers shared by the engine tests (and the child processes they start)."""

from __future__ import annotations

from collections.abc import Sequence

from messaging.driver import Delivery, OutgoingMessage, Subscription, SubscriptionOptions
from messaging.engine.driver import EngineDriver
from messaging.urls import parse_url


def send(driver: EngineDriver, destination: str, *bodies: bytes, **fields: object
         ) -> list[str]:
    """Send ``bodies`` with the same OutgoingMessage ``fields``; return the ids."""
    results = driver.send_batch(
        destination, [OutgoingMessage(body=body, **fields) for body in bodies]  # type: ignore[arg-type]
    )
    assert all(isinstance(result, str) for result in results), results
    return [str(result) for result in results]


def subscribe(driver: EngineDriver, destination: str, group: str,
              visibility_timeout: float | None = None) -> Subscription:
    return driver.subscribe(destination, group,
                            SubscriptionOptions(visibility_timeout=visibility_timeout))


def take(subscription: Subscription, count: int = 100) -> list[Delivery]:
    """Whatever is deliverable now (no waiting)."""
    return subscription.receive_batch(count, 0.0)


def bodies(deliveries: Sequence[Delivery]) -> list[bytes]:
    return [delivery.body for delivery in deliveries]


def ack_all(subscription: Subscription, deliveries: Sequence[Delivery]) -> None:
    subscription.send_acks([delivery.ack_id for delivery in deliveries])


# -- child processes (importable by multiprocessing's spawn) ----------------------------
def produce(url: str, destination: str, start: int, count: int) -> None:
    driver = EngineDriver.open(parse_url(url), {})
    try:
        for first in range(start, start + count, 50):
            batch = [str(n).encode() for n in range(first, min(first + 50, start + count))]
            send(driver, destination, *batch)
    finally:
        driver.close()


def consume(url: str, destination: str, group: str, results: object, stop: object) -> None:
    """Receive and ack until ``stop`` is set, putting every body on ``results``."""
    driver = EngineDriver.open(parse_url(url), {})
    try:
        subscription = subscribe(driver, destination, group, visibility_timeout=30.0)
        while not stop.is_set():  # type: ignore[attr-defined]
            got = subscription.receive_batch(20, 0.05)
            ack_all(subscription, got)
            for delivery in got:
                results.put(delivery.body)  # type: ignore[attr-defined]
    finally:
        driver.close()


def hold_and_die(url: str, destination: str, group: str, ready: object) -> None:
    """Receive everything with a short lease, report it, and die without settling."""
    import os

    driver = EngineDriver.open(parse_url(url), {})
    subscription = subscribe(driver, destination, group, visibility_timeout=0.5)
    got: list[Delivery] = []
    while len(got) < 5:
        got.extend(subscription.receive_batch(5 - len(got), 1.0))
    ready.put([delivery.body for delivery in got])  # type: ignore[attr-defined]
    ready.close()  # type: ignore[attr-defined]
    ready.join_thread()  # type: ignore[attr-defined]  # the report is out; now die
    os._exit(0)  # no close, no nack: like a crash
