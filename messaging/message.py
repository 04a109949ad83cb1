"""``Message``: one received message and its settlement.

Delivery semantics
------------------
A message is settled once: ``ack()``, ``nack()`` or (by the worker) dead-lettered.
Settling it the same way twice is a no-op; settling it a different way raises
:class:`~messaging.errors.AlreadySettled` (the double-ack detection Go CDK and kombu
users expect). A message not settled when its consumer closes is released back to the
group and redelivered with ``attempt`` + 1.

``value`` is decoded lazily on first access, so a consumer that only forwards bytes pays
nothing for decoding, and a body that does not decode raises ``SerializationError`` at
that access rather than breaking the receive call for the whole batch.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, NoReturn

from messaging.codecs import Codec, content_type_of
from messaging.driver import Delivery, Position
from messaging.errors import AlreadySettled, ConfigurationError

if TYPE_CHECKING:
    from messaging.consumer import Consumer


class Settlement(enum.Enum):
    PENDING = "pending"
    ACKED = "acked"
    NACKED = "nacked"
    DEAD_LETTERED = "dead_lettered"
    RELEASED = "released"  # its consumer closed first, or the backend took it back


# The states the hot paths (every message made, every ack) test and set, as globals: on
# Python 3.11 ``EnumType.__getattr__`` makes reading a member off the class cost about
# three times a global's read. Consumer.ack_many and the AckBatcher read them from here.
PENDING = Settlement.PENDING
ACKED = Settlement.ACKED

_VERBS = {Settlement.ACKED: "ack", Settlement.NACKED: "nack",
          Settlement.DEAD_LETTERED: "dead-letter"}


class Message:
    """A received message. Attributes mirror DESIGN.md's fixed names."""

    __slots__ = ("_ack_id", "_consumer", "_decoded", "_delivery", "_state")

    def __init__(self, delivery: Delivery, consumer: Consumer) -> None:
        self._delivery = delivery
        self._ack_id = delivery.ack_id  # read on every settlement: one attribute hop
        self._consumer = consumer
        self._state = PENDING
        self._decoded: object = _UNDECODED

    # -- data -------------------------------------------------------------------------
    @property
    def body(self) -> bytes:
        return self._delivery.body

    @property
    def value(self) -> object:
        """The body decoded by the consumer's codec (by its ``content-type`` header)."""
        if self._decoded is _UNDECODED:
            codec: Codec = self._consumer._codec
            self._decoded = codec.decode(self._delivery.body, content_type_of(self.headers))
        return self._decoded

    @property
    def key(self) -> str | None:
        return self._delivery.key

    @property
    def headers(self) -> dict[str, str]:
        return self._delivery.headers

    @property
    def id(self) -> str:
        return self._delivery.id

    @property
    def timestamp(self) -> dt.datetime | None:
        return self._delivery.timestamp

    @property
    def attempt(self) -> int:
        return self._delivery.attempt

    @property
    def destination(self) -> str:
        return self._delivery.destination

    @property
    def position(self) -> Position | None:
        return self._delivery.position

    @property
    def settlement(self) -> Settlement:
        return self._state

    @property
    def delivery(self) -> Delivery:
        """The driver's record (ack id and all), for the worker and middleware."""
        return self._delivery

    # -- settlement -------------------------------------------------------------------
    def ack(self) -> None:
        """Settle as processed. The broker will not deliver it to this group again.

        When it raises (the broker could not be told), the message is pending again:
        another ``ack()`` sends it again, and closing the consumer gives it back."""
        if self._claim(ACKED):
            try:
                self._consumer._settle_acks([self])
            except BaseException:
                self._unclaim(ACKED)
                raise

    def nack(self, requeue: bool = True, delay: float | None = None) -> None:
        """Give the message back: redelivered (not before ``delay`` seconds) with
        ``attempt`` + 1 when ``requeue``; otherwise dead-lettered where the consumer has a
        ``dead_letter`` destination, and dropped where it has none. When it raises, the
        message is pending again, as with ``ack()``."""
        if requeue is not True and requeue is not False:
            # requeue=None read as false would drop the message where there is no
            # dead-letter destination.
            raise ConfigurationError(f"requeue must be True or False, got {requeue!r}")
        if not requeue:
            if self._claim(Settlement.DEAD_LETTERED):
                try:
                    self._consumer._dead_letter(self, reason="rejected", error=None)
                except BaseException:
                    self._unclaim(Settlement.DEAD_LETTERED)
                    raise
            return
        self._consumer._check_delay(delay)
        if self._claim(Settlement.NACKED):
            try:
                self._consumer._settle_nacks([self], delay)
            except BaseException:
                self._unclaim(Settlement.NACKED)
                raise

    def extend(self, seconds: float) -> None:
        """Keep the message invisible to other members for ``seconds`` from now."""
        if self._state is not Settlement.PENDING:
            raise AlreadySettled(f"message {self.id} is {self._state.value}; cannot extend")
        self._consumer._extend(self, seconds)

    def _claim(self, outcome: Settlement) -> bool:
        """Move to ``outcome``; False when already there, AlreadySettled when elsewhere."""
        if self._state is outcome:
            return False
        if self._state is not PENDING:
            raise AlreadySettled(f"message {self.id} is already "
                                 f"{self._state.value.replace('_', '-')}; cannot "
                                 f"{_VERBS[outcome]} it")
        self._state = outcome
        return True

    def _unclaim(self, outcome: Settlement) -> None:
        """Back to pending after settling as ``outcome`` failed: the broker was not told,
        and a settlement that did not happen must not look done (a retried ``ack()``
        would otherwise return at once, and close() would not give the message back)."""
        if self._state is outcome:
            self._state = PENDING

    def _release(self) -> bool:
        """Mark as given back (its consumer closed, or the backend took it back); True if
        it was still pending."""
        if self._state is PENDING:
            self._state = Settlement.RELEASED
            return True
        return False

    def __reduce__(self) -> NoReturn:
        # pickle (a process pool) and copy would reach the consumer's connection and
        # fail on some socket or lock, or make a second settlement state for one delivery.
        raise TypeError(
            "a Message belongs to the consumer that received it and is settled through "
            "it; pass message.body, .value, .key and .headers to another process, and "
            "ack or nack the message here")

    def __repr__(self) -> str:
        return (
            f"<Message id={self.id!r} destination={self.destination!r} key={self.key!r} "
            f"attempt={self.attempt} {self._state.value} {len(self.body)} bytes>"
        )


_UNDECODED = object()

