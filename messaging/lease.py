"""Keeping the messages a worker holds invisible to the rest of its group.

Delivery semantics
------------------
On a backend with a visibility timeout (SQS, Redis Streams, the reference engine), a
message whose handler runs longer than the timeout would be delivered to another member
while the first one still works on it. The same holds for a message that waits in its
key's lane behind a slow one. While ``Consumer.run`` holds messages, a
:class:`LeaseKeeper` therefore extends every one of them that is still unsettled, in one
``extend`` batch every half lease, by a whole lease. A message the worker gave back or
settled is no longer held, so its lease runs out as usual; a worker that dies stops
extending, so its messages come back after at most one lease.

Errors
------
A failed extension is logged and tried again at the next beat: the worker goes on, and
the worst outcome is the redelivery the keeper exists to prevent, never a loss.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from messaging.errors import MessagingError

if TYPE_CHECKING:
    from messaging.consumer import Consumer

log = logging.getLogger("messaging.lease")

_SHORTEST_BEAT = 0.05  # seconds; a shorter lease is a test's, not worth a busier loop


@contextlib.contextmanager
def kept_invisible(consumer: Consumer) -> Iterator[None]:
    """Extend ``consumer``'s held messages for as long as the block runs (where the
    backend has leases to extend)."""
    keeper = LeaseKeeper.for_consumer(consumer)
    if keeper is None:
        yield
        return
    keeper.start()
    try:
        yield
    finally:
        keeper.stop()


class LeaseKeeper:
    """Extends ``consumer``'s unsettled messages every ``lease / 2`` seconds."""

    def __init__(self, consumer: Consumer, lease: float) -> None:
        self._consumer = consumer
        self._lease = lease
        self._beat = max(_SHORTEST_BEAT, lease / 2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="messaging-lease-keeper",
                                        daemon=True)

    @classmethod
    def for_consumer(cls, consumer: Consumer) -> LeaseKeeper | None:
        """A keeper where the backend can extend and the subscription has a lease."""
        if not consumer.capabilities.extend:
            return None
        try:
            lease = consumer._lease()
        except MessagingError as error:
            # E.g. credentials that may receive but not read the queue's attributes: the
            # worker still runs, as it would have without automatic extension.
            log.warning("no automatic extension on %r: its visibility timeout could not be "
                        "read: %s", consumer.destination, error)
            return None
        return None if lease is None else cls(consumer, lease)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._beat):
            held = self._consumer._unsettled()
            if not held:
                continue
            try:
                self._consumer._extend_many(held, self._lease)
            except MessagingError as error:
                log.warning("could not extend %d message(s) on %r; trying again in %.1f s: "
                            "%s", len(held), self._consumer.destination, self._beat, error)
