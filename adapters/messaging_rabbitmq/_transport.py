"""The small private protocol between the driver and the client library.

The driver (:mod:`messaging_rabbitmq.driver`) decides WHAT goes to the broker: which
exchange and queue, which properties, which deliveries to settle. A :class:`Transport`
does it with pika and owns everything pika makes hard: its single I/O thread, channels,
publisher confirms, consumer callbacks. The split is Go CDK's ``rabbitpubsub/amqp.go``:
the driver's unit tests run over a fake transport, the contract tests over the real one
(:mod:`messaging_rabbitmq._pika`).

Every method may be called from any thread, and blocks until the broker answered. None
retries: a failure raises the native exception (pika's, or one of
:mod:`messaging_rabbitmq._errors`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """``exchange.declare`` (``passive``: only check that it exists)."""

    name: str
    type: str = "fanout"
    durable: bool = True
    auto_delete: bool = False
    passive: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Queue:
    """``queue.declare`` (always durable: every queue of the adapter outlives restarts)."""

    name: str
    arguments: Mapping[str, object] = dataclasses.field(default_factory=dict)
    passive: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Binding:
    """``queue.bind`` with an empty binding key (every exchange here is a fanout)."""

    queue: str
    exchange: str


Declaration = Exchange | Queue | Binding


@dataclasses.dataclass(frozen=True, slots=True)
class Publish:
    """One ``basic.publish``; ``properties`` is a ``pika.BasicProperties``."""

    exchange: str
    routing_key: str
    body: bytes
    properties: Any


Arrival = tuple[int, str, bool, Any, bytes]
"""One ``basic.deliver``: delivery tag, routing key, redelivered, properties, body."""


class Sink(Protocol):
    """Where a consumer channel hands its deliveries; called on the I/O thread, so an
    implementation must only store and signal, never block."""

    def deliver(self, arrivals: Sequence[Arrival]) -> None:
        """Deliveries in arrival order: those read in one pass of the I/O loop come in
        one call, so a waiting receiver is woken once for all of them."""

    def failed(self, error: BaseException) -> None:
        """The channel closed without being asked to (connection lost, queue deleted):
        its unsettled deliveries are back with the broker."""


class ConsumerChannel(Protocol):
    """One channel with one ``basic.consume`` on it (``basic.qos`` = the prefetch)."""

    def ack(self, tags: Sequence[int]) -> None:
        """``basic.ack`` these delivery tags (as few frames as ``multiple`` allows)."""

    def stop(self) -> bool:
        """``basic.cancel`` and wait for the broker's cancel-ok: every delivery sent
        before it has then reached the sink, and no more come. False when the channel
        is already gone."""

    def close(self) -> None:
        """Close the channel; the broker requeues what is unsettled. Idempotent."""

    def native(self) -> object:
        """The ``pika.channel.Channel``."""


class Transport(Protocol):
    """One AMQP connection."""

    @property
    def alive(self) -> bool:
        """False once the connection is closed or lost (it is never reopened: the
        driver opens a new transport)."""

    @property
    def frame_max(self) -> int:
        """The negotiated frame size: one message's properties must fit in one frame."""

    def declare(self, declarations: Sequence[Declaration]) -> list[int]:
        """Declare in order on one channel; the message count of each queue declared
        (``0`` for exchanges and bindings). Stops at the first refusal and raises it."""

    def delete(self, queues: Sequence[str], exchanges: Sequence[str]) -> None:
        """Delete queues, then exchanges; a missing one is no error."""

    def publish(self, messages: Sequence[Publish]) -> list[BaseException | None]:
        """Publish with confirms, all in flight at once; per message None (confirmed)
        or the error (nacked, channel closed, not confirmed in time)."""

    def consume(self, queue: str, prefetch: int, sink: Sink) -> ConsumerChannel:
        """Open a channel, set its prefetch and start consuming ``queue``."""

    def native(self) -> object:
        """The ``pika.SelectConnection``."""

    def close(self) -> None:
        """Close the connection (unsettled deliveries go back). Idempotent."""
