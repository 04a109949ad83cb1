"""The adapter (driver) interface: what a backend must implement, and nothing more.

A driver translates a small, batch-oriented protocol to one broker. Everything that is
policy lives above it, in the portable layer (``Producer``, ``Consumer``, the worker
loop, the middleware): batching of user calls, retries and backoff, ack bookkeeping and
double-settlement detection, dead-letter decisions, codecs, capability and size checks,
secret redaction. The shape follows Go CDK's ``pubsub/driver``: a driver is small, and
its obligations are written on each method.

Obligations common to every method
----------------------------------
* A driver must not retry a failed broker call and must not swallow an error: it lets
  the native exception propagate, and the portable layer classifies it with
  :meth:`Driver.error_code` and raises the ``messaging`` error with the native one as
  ``__cause__``.
* A driver must not apply settlement policy (no automatic ack, no automatic dead
  letter, no "ack on receive"), except what its broker does natively and its
  :class:`~messaging.capabilities.Capabilities` declare.
* A driver puts the body bytes on the wire unchanged and headers as the broker's native
  headers: no private envelope, so plain clients interoperate both ways.
* Thread safety: the portable layer never calls ``receive_batch`` of one subscription
  from two threads at once. Every other method may be called from any thread, also
  while ``receive_batch`` blocks (handler threads ack while the worker receives).

Delivery semantics
------------------
At-least-once. A delivery stays outstanding until its ack id is acked, nacked or
dead-lettered, or until the visibility timeout passes or the subscription closes or
dies; then the broker delivers it again with ``attempt`` one higher.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar, Literal, NamedTuple

from messaging.capabilities import Capabilities
from messaging.errors import ErrorCode
from messaging.urls import BrokerURL

Position = str
"""An opaque, printable point in a destination's history, usable with ``seek``."""

SeekTarget = Literal["beginning", "end"] | dt.datetime | Position
AckId = Hashable

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class OutgoingMessage(NamedTuple):
    """One message as the portable layer hands it to ``send_batch``.

    Checked before it gets here: the body fits ``max_message_bytes``, ``delay`` is within
    ``max_delay``, ``priority`` within the declared levels, ``dedup_id`` only where
    ``dedup`` holds. A driver need not check these again.

    ``headers`` may be one mapping shared by several messages of a batch (the plain
    values of one ``send_many``): a driver reads it and must never modify it.

    A named tuple rather than a frozen dataclass: it is made once per message sent, and a
    frozen dataclass costs three times as much to construct.
    """

    body: bytes
    key: str | None = None
    headers: Mapping[str, str] = _NO_HEADERS
    delay: float | None = None
    priority: int | None = None
    dedup_id: str | None = None


@dataclasses.dataclass(slots=True)
class Delivery:
    """One received message as a driver hands it up.

    ``id`` must be the same on every delivery of the same sent message (the soak test
    de-duplicates redeliveries by it). ``attempt`` is 1 on the first delivery and counts
    deliveries to this group, as exactly as the broker allows.
    """

    ack_id: AckId
    body: bytes
    id: str
    attempt: int
    destination: str
    key: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    timestamp: dt.datetime | None = None
    position: Position | None = None


def no_running_handlers(leaving: Callable[[AckId], bool], timeout: float) -> None:
    """The default ``SubscriptionOptions.finish_running``: no worker runs handlers, so
    there is nothing to wait for."""


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """Per-consumer settings, validated by the portable layer."""

    visibility_timeout: float | None = None
    """Seconds before an unacked delivery is redelivered; None: the backend's default."""
    prefetch: int = 100
    """Most deliveries the broker should push ahead of acks (``basic_qos``, COUNT...)."""
    acked_unsent: Callable[[], list[AckId]] = list
    """The ack ids of deliveries the portable layer has settled as acked whose
    ``send_acks`` has not returned yet: above all the worker's batched acks, which wait
    while a batch before them travels. A driver whose broker takes deliveries away from
    a member on its own (a Kafka rebalance revoking partitions) should settle those of
    them it gives away, in the same step, so that the next owner does not receive work
    that was done (their ``send_acks`` follows and must then be a harmless no-op). It
    takes only a lock of the portable layer that is never held across a driver call, so
    a driver may call it from any thread, under its own locks, inside ``receive_batch``."""
    finish_running: Callable[[Callable[[AckId], bool], float], None] = no_running_handlers
    """``finish_running(leaving, timeout)`` returns once no handler of the portable
    layer's worker is still running, unsettled, on a delivery whose ack id ``leaving``
    accepts, or after ``timeout`` seconds. A driver whose broker takes deliveries away
    from a member on its own (a Kafka revocation) calls it before it gives them away,
    and makes ``holds`` false for them first (so the worker starts no more of them);
    then it settles ``acked_unsent``. So a handler running at that moment finishes and
    its ack goes with the hand-over, instead of its work being done again by the next
    owner. It holds no lock while it waits: settling (``send_nacks``, and the acked
    state ``acked_unsent`` reads) goes on meanwhile, though ``send_acks`` may wait for
    the driver."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """One delivery to move to ``destination`` with ``headers`` (original + reason)."""

    ack_id: AckId
    destination: str
    body: bytes
    key: str | None
    headers: Mapping[str, str]


SendResult = str | BaseException
"""Per message of a batch: the broker's message id, or the native error for it."""


class Subscription(abc.ABC):
    """One consumer's attachment to (destination, group)."""

    @abc.abstractmethod
    def receive_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Return 1..max_messages deliveries, or [] once ``timeout`` seconds have passed.

        Must not block longer than ``timeout`` (plus one broker round trip). Returning
        fewer than asked is fine: the portable layer asks again.
        """

    @abc.abstractmethod
    def send_acks(self, ack_ids: Sequence[AckId]) -> None:
        """Settle these deliveries as done, in as few broker calls as the broker allows.

        Must be safe with out-of-order acks: a broker with a committed position per
        partition commits only the contiguous acked prefix. Ack ids are never repeated
        (the portable layer suppresses double settlement).
        """

    @abc.abstractmethod
    def send_nacks(self, ack_ids: Sequence[AckId], delay: float | None) -> None:
        """Make these deliveries deliverable again to the group, not before ``delay``.

        The redelivery must carry ``attempt`` + 1. ``delay`` is within ``max_delay``.
        With the destination deleted, raise what ``error_code`` classifies as
        ``NOT_FOUND`` (the consumer's close then knows there is nothing to give back).
        """

    def extend(self, ack_ids: Sequence[AckId], seconds: float) -> None:
        """Push the visibility deadline of these deliveries ``seconds`` from now.

        Only called where ``capabilities.extend`` holds. The worker's lease keeper calls
        it from its own thread, and a delivery may have been settled a moment before
        (the handler's ack races with the keeper): extending a settled delivery must be
        a harmless no-op, never an error.
        """
        raise NotImplementedError

    def lease(self) -> float | None:
        """Seconds a delivery stays invisible to the rest of the group after it was
        received or extended (the ``visibility_timeout`` in force, the backend's default
        when the consumer gave none); None where deliveries have no such deadline.

        While ``Consumer.run`` holds messages, the portable layer extends them every
        half lease, so a long handler does not see its message redelivered elsewhere.
        """
        return None

    def holds(self, ack_id: AckId) -> bool:
        """False once this delivery is no longer this consumer's to settle: the backend
        has made it deliverable to the group again on its own (its partition moved to
        another member, its channel closed, a ``seek`` dropped it). True while settling
        it can still take effect, and wherever the backend cannot tell.

        The worker asks before each handler starts, so that it does not do again work
        the group's next owner will do anyway: it must be cheap (no broker call) and may
        be called from any thread.
        """
        return True

    def seek(self, target: SeekTarget) -> None:
        """Move the group's position; only called where ``capabilities.replay`` holds.
        A datetime ``target`` is always timezone-aware (the portable layer refuses naive
        ones); a str other than ``"beginning"``/``"end"`` is a position to parse."""
        raise NotImplementedError

    def send_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Move deliveries to their dead-letter destination in one step.

        Only called where ``capabilities.dead_letter == "native"``; otherwise the
        portable layer publishes each letter and then acks it.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def close(self) -> None:
        """Detach. Outstanding deliveries must become deliverable again (or will, once
        their visibility timeout passes). Must be idempotent, and must not fail because
        the destination was deleted meanwhile."""

    def as_native(self) -> object:
        """The client library's consumer object, for what the portable API lacks."""
        return None


class Driver(abc.ABC):
    """One connection to one backend. Found through the ``messaging.adapters`` entry
    points, by URL scheme."""

    schemes: ClassVar[tuple[str, ...]] = ()
    """URL schemes this driver serves."""
    option_types: ClassVar[Mapping[str, type]] = {}
    """Driver options and their types; anything else is refused as unknown. Strings from
    a URL query, a config file or the environment are converted to these types by the
    portable layer before the driver sees them."""
    install_hint: ClassVar[str] = ""
    not_after_fork: ClassVar[str | None] = None
    """Why the client library cannot open a connection in a child forked from a process
    that has one (None: it can). The portable layer then refuses a client's first use in
    such a child with this reason, instead of reopening it there (see
    :mod:`messaging.forks`)."""

    @classmethod
    @abc.abstractmethod
    def open(cls, url: BrokerURL, options: Mapping[str, object]) -> Driver:
        """Connect. Must fail within ``options["connect_timeout"]`` seconds."""

    @abc.abstractmethod
    def capabilities(self, destination: str | None = None) -> Capabilities:
        """What this backend guarantees; for ``destination`` where it differs."""

    @abc.abstractmethod
    def send_batch(
        self, destination: str, messages: Sequence[OutgoingMessage]
    ) -> list[SendResult]:
        """Send and return only after the broker confirmed each message (or refused it).

        Keep many messages in flight: never one round trip per message. The result has
        one entry per message, in order; a partial failure is reported per message, never
        dropped. An error that fails the whole batch may be raised instead.
        """

    @abc.abstractmethod
    def subscribe(
        self, destination: str, group: str, options: SubscriptionOptions
    ) -> Subscription:
        """Attach a consumer. The group exists from this call on: it receives every
        message sent after it (DESIGN contract 11)."""

    @abc.abstractmethod
    def create(
        self,
        destination: str,
        partitions: int,
        groups: Sequence[str],
        options: Mapping[str, object],
    ) -> None:
        """Create the destination and declare the groups. Idempotent."""

    @abc.abstractmethod
    def delete(self, destination: str) -> None:
        """Delete the destination and its groups. Deleting a missing one is no error."""

    @abc.abstractmethod
    def depth(self, destination: str, group: str) -> int:
        """Messages sent after the group existed and not yet acked by it."""

    def destinations(self) -> list[str]:
        """Names of existing destinations (for ``messaging stats``)."""
        raise NotImplementedError

    def groups(self, destination: str) -> list[str]:
        """Names of the groups of ``destination``."""
        raise NotImplementedError

    @abc.abstractmethod
    def error_code(self, error: BaseException) -> ErrorCode:
        """Classify a native exception; the one place a driver maps its errors.

        Must not depend on instance state: for errors raised by ``open`` the portable
        layer calls it on an instance that was never opened."""

    def as_native(self) -> object:
        """The client library's connection/client object."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release every resource. Idempotent."""
