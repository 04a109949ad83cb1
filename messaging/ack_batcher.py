"""Acking the messages a worker's handlers finished, many per broker call.

Delivery semantics
------------------
A handler that returns without settling its message has it acked by the worker. Acking
each one as it finishes costs one broker round trip per message (a synchronous offset
commit on Kafka, an ``XACK`` on Redis, a ``DeleteMessageBatch`` on SQS), which bounds a
worker with quick handlers to the broker's round-trip rate. An :class:`AckBatcher`
instead marks the message acked at once (so a second settlement is detected as usual)
and sends the acks from a thread of its own, as a group commit: while one batch travels,
the acks of the handlers that finish meanwhile collect and go together in the next one.
An ack therefore waits at most one broker round trip longer than it would alone, and a
slow broker gets larger batches instead of a queue.

A handler's own ``message.ack()`` is not deferred: it returns once the broker has it,
as everywhere else.

A message whose ack waits here is acked as far as the consumer is concerned, and its
driver can ask for it (``SubscriptionOptions.acked_unsent``): a Kafka rebalance that
takes its partition away commits it with the revocation, so the next owner does not
process it again.

Errors
------
A batch the broker refuses (or a lost connection) is logged with its consequence: those
messages are delivered again (at-least-once), never lost. The worker goes on.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from messaging.errors import MessagingError
from messaging.message import ACKED, PENDING, Message

if TYPE_CHECKING:
    from messaging.consumer import Consumer

log = logging.getLogger("messaging.worker")


class AckBatcher:
    """Acks ``consumer``'s messages in batches, on its own thread, while the block runs;
    leaving the block sends what is still waiting before it returns."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._waiting: list[Message] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # entered as the bare lock
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="messaging-acks", daemon=True)

    def __enter__(self) -> AckBatcher:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with self._lock:
            self._closing = True
            self._changed.notify()
        self._thread.join()

    def ack(self, message: Message) -> None:
        """Settle ``message`` as acked now; the broker hears of it with the next batch.
        May be called from any thread."""
        if message._state is PENDING:  # Message._claim inlined: per message
            message._state = ACKED
        elif not message._claim(ACKED):
            return  # already acked: nothing to send twice
        with self._lock:
            self._waiting.append(message)
            if len(self._waiting) == 1:
                # Only the first of a batch wakes the sender: the others find it busy
                # or about to look.
                self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closing:
                    self._changed.wait()
                batch, self._waiting = self._waiting, []
            if not batch:
                return  # closing, and everything was sent
            self._send(batch)

    def _send(self, batch: list[Message]) -> None:
        try:
            self._consumer._settle_acks(batch)
        except MessagingError as error:
            log.warning("could not ack %d handled message(s) on %r; the broker will deliver "
                        "them again: %s", len(batch), self._consumer.destination, error)
        except Exception:
            log.exception("could not ack %d handled message(s) on %r; the broker will "
                          "deliver them again", len(batch), self._consumer.destination)
