"""The RabbitMQ driver: destinations, groups, delays and settlement mapped onto AMQP 0-9-1.

Topology (names in :mod:`messaging_rabbitmq._names`): a destination is a durable fanout
exchange; a group is a durable queue bound to it (a quorum queue by default, a classic
one with ``queue_type="classic"``), so every group gets every message (fan-out) and the
members of a group compete for the messages of its queue. The key is the routing key.

Delivery semantics
------------------
* Sends: persistent messages, publisher confirms always on; ``send_batch`` writes the
  whole batch, then waits for the confirms (one round trip per batch, not per message),
  and reports each message's fate.
* Consumers: one channel each, ``basic.qos(prefetch)``, manual acks. A delivery stays
  unacked until ``send_acks``/``send_nacks``; when its channel or connection closes
  (consumer closed, process killed, network lost) the broker puts it back and the next
  delivery carries ``attempt`` + 1. RabbitMQ has no per-message visibility timeout: a
  member that hangs keeps its messages until its connection dies (heartbeats notice a
  dead peer) or the broker's ``consumer_timeout`` (30 min by default) closes its
  channel. Hence ``visibility_timeout`` and ``extend`` are declared unsupported.
* ``attempt``: what the broker counts (a quorum queue's ``x-delivery-count``; a classic
  queue only flags a redelivery, which counts as one) plus ``x-prior-deliveries``,
  which the adapter sets when it re-publishes a message.
* ``send_nacks`` re-publishes: a copy with ``x-prior-deliveries`` = the deliveries so
  far goes back into the group's queue (through the group's re-entry exchange), and the
  original is acked once the copy is confirmed. The message moves to the back of the
  queue. That keeps ``attempt`` exact on classic queues too, and ``depth`` never reads
  a nacked message as gone (a ``basic.nack`` takes effect some time after it is sent).
  Without a delay the re-publish waits for the consumer's next ``receive_batch``, its
  ``close`` or 0.2 s, so that a consumer closing right after a nack does not get the
  message back first (see ``RabbitSubscription._requeue_soon``).
* ``close`` cancels the consumer, re-publishes what it received but never handed out
  (with its count unchanged: nobody saw it), then closes the channel.
* Delay (emulated, there is no delayed-message plugin): a message waits in a quorum
  queue with a TTL per delay value (rounded up, at most 10 %), which dead-letters it
  into the destination's exchange (a delayed send: every group that exists when the
  delay ends gets it) or into the group's own re-entry exchange (a delayed nack: only
  that group), at least once (see ``delay_queue_arguments``). A delayed nack publishes
  the copy, waits for its confirm, and only then acks the original: a crash in between
  duplicates, never loses.
* Dead letters are emulated by the portable layer (publish with the reason, then ack):
  the broker's dead-letter exchanges are fixed per queue at declaration and cannot add
  the reason headers the contract asks for.
* ``depth`` = the queue's ready messages (``queue.declare`` passive) + deliveries this
  connection holds unsettled + messages in the delay queues this connection used.
  AMQP does not report other connections' unacked deliveries; the management API does,
  with a lag of its statistics interval.
* Connection loss: every waiting call fails with ``ConnectionFailed`` (unconfirmed sends
  are reported per message, never dropped), consumers' unsettled deliveries go back to
  their queues, and the next call opens a new connection, at most one attempt per
  backoff period (0.5 s doubling to 30 s while attempts fail). A consumer reports the
  loss on its next ``receive_batch`` and re-attaches on the one after.

Errors
------
One table, :func:`messaging_rabbitmq._errors.error_code`: a missing exchange or queue
(``404``) is ``NOT_FOUND``; refused credentials or permissions ``AUTHENTICATION``; an
unreachable broker, a lost connection or a closed channel ``CONNECTION``; an
inequivalent re-declaration (say a classic queue where a quorum queue exists) or a key
that cannot be a routing key ``CONFIGURATION``; a header table over one frame or a body
over the broker's ``max_message_size`` ``TOO_LARGE``; no answer within
``request_timeout`` ``TIMEOUT``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import pika.exceptions

from messaging.capabilities import Capabilities
from messaging.driver import (
    AckId,
    Delivery,
    Driver,
    OutgoingMessage,
    SendResult,
    Subscription,
    SubscriptionOptions,
)
from messaging.errors import ConfigurationError, ErrorCode
from messaging.urls import BrokerURL
from messaging_rabbitmq import _names, _wire
from messaging_rabbitmq._errors import ConnectionDown, QueueDeleted, StaleDelivery, error_code
from messaging_rabbitmq._pika import PikaTransport
from messaging_rabbitmq._settings import OPTION_TYPES, Settings
from messaging_rabbitmq._transport import (
    Arrival,
    Binding,
    ConsumerChannel,
    Exchange,
    Publish,
    Queue,
    Transport,
)

REQUEUE_WITHIN = 0.2
"""Longest wait before a nacked message is back in its queue (see ``_requeue_soon``)."""
log = logging.getLogger("messaging.rabbitmq")

MAX_QOS = 65535  # basic.qos prefetch_count is an AMQP short
_FIRST_BACKOFF = 0.5
_MAX_BACKOFF = 30.0
_PROPERTIES_OVERHEAD = 1024  # frame header, end marker and every non-header property



def delay_queue_arguments(milliseconds: int, target: str) -> dict[str, object]:
    """A delay queue: a quorum queue whose messages all live ``milliseconds`` and then
    dead-letter into the exchange ``target``.

    Quorum, with at-least-once dead-lettering, because a classic queue dead-letters at
    most once: a message whose delay ends while its target queue is not available (as
    during a broker restart, when the quorum group queues start after the classic delay
    queues) would be dropped. At-least-once dead-lettering needs ``reject-publish``
    overflow, which without a length limit never triggers.
    """
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": milliseconds,
        "x-expires": _names.delay_queue_expiry(milliseconds),
        "x-dead-letter-exchange": target,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


class RabbitDriver(Driver):
    """One AMQP connection (see the module documentation)."""

    schemes: ClassVar[tuple[str, ...]] = ("amqp", "amqps")
    option_types: ClassVar[Mapping[str, type]] = OPTION_TYPES
    install_hint: ClassVar[str] = 'pip install "messaging[rabbitmq]"'

    def __init__(self, settings: Settings, connect: Callable[[], Transport]) -> None:
        """``connect()`` opens a :class:`~messaging_rabbitmq._transport.Transport`; it is
        called again for each reconnection."""
        self.settings = settings
        self._connect = connect
        self._lock = threading.RLock()
        self._transport: Transport = connect()
        self._closed = False
        self._backoff = 0.0
        self._next_attempt = 0.0
        self._capabilities = settings.capabilities()
        self._ids = _wire.MessageIds()
        # What this connection declared or saw; the broker is the truth, these only save
        # round trips and tell ``delete``/``depth`` which objects to look at.
        self._exchanges: set[str] = set()
        self._declared: dict[str, float] = {}  # delay queue / re-entry exchange -> when
        self._groups: dict[str, set[str]] = collections.defaultdict(set)
        self._delay_queues: dict[str, dict[str, tuple[str | None, float]]] = \
            collections.defaultdict(dict)  # destination -> queue -> (group, known until)
        self._subscriptions: weakref.WeakSet[RabbitSubscription] = weakref.WeakSet()
        self._flush_thread: _Flusher | None = None

    @classmethod
    def open(cls, url: BrokerURL, options: Mapping[str, object]) -> RabbitDriver:
        settings = Settings.parse(options)
        parameters = settings.connection_parameters(url)
        return cls(settings, lambda: PikaTransport(
            parameters, connect_timeout=settings.connect_timeout,
            request_timeout=settings.request_timeout))

    def capabilities(self, destination: str | None = None) -> Capabilities:
        return self._capabilities

    # -- sending ------------------------------------------------------------------------
    def send_batch(self, destination: str, messages: Sequence[OutgoingMessage]
                   ) -> list[SendResult]:
        transport = self._live()
        self._require_exchange(transport, destination)
        room = transport.frame_max - _PROPERTIES_OVERHEAD
        stamp = int(time.time())
        ids = [self._ids.next() for _ in messages]
        # Everything is encoded before the first publish: a message that cannot be
        # expressed in AMQP fails the batch with nothing sent.
        publishes = [
            Publish(destination if not message.delay
                    else self._send_delay_exchange(transport, destination, message.delay),
                    _wire.routing_key(message.key), message.body,
                    _wire.properties(message, message_id, stamp, room))
            for message, message_id in zip(messages, ids, strict=True)
        ]
        outcomes = transport.publish(publishes)
        self._forget_missing(destination, outcomes)
        return [message_id if outcome is None else outcome
                for message_id, outcome in zip(ids, outcomes, strict=True)]

    # -- consuming ----------------------------------------------------------------------
    def subscribe(self, destination: str, group: str, options: SubscriptionOptions
                  ) -> RabbitSubscription:
        transport = self._live()
        queue = _names.group_queue(destination, group)
        # Checking the exchange first leaves no orphan queue behind when it is missing.
        transport.declare([Exchange(destination, passive=True),
                           Queue(queue, self.settings.queue_arguments()),
                           Binding(queue, destination)])
        self._exchanges.add(destination)
        self._groups[destination].add(group)
        subscription = RabbitSubscription(self, destination, group, queue, options.prefetch)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    # -- administration -----------------------------------------------------------------
    def create(self, destination: str, partitions: int, groups: Sequence[str],
               options: Mapping[str, object]) -> None:
        if options:
            raise ConfigurationError(
                f"unknown create options {sorted(options)}: the RabbitMQ adapter takes "
                "none (queue_type and max_priority are connection options)")
        transport = self._live()
        declarations: list[Exchange | Queue | Binding] = [Exchange(destination)]
        for group in groups:
            queue = _names.group_queue(destination, group)
            declarations += [Queue(queue, self.settings.queue_arguments()),
                             Binding(queue, destination)]
        transport.declare(declarations)
        self._exchanges.add(destination)
        self._groups[destination].update(groups)

    def delete(self, destination: str) -> None:
        transport = self._live()
        with self._lock:
            groups = self._groups.pop(destination, set())
            delays = self._delay_queues.pop(destination, {})
            self._exchanges.discard(destination)
        group_queues = [_names.group_queue(destination, group) for group in sorted(groups)]
        for name in [*group_queues, *delays]:
            self._declared.pop(name, None)
        # Delay queues first (their auto-delete entrance exchanges go with them), then
        # the groups' queues and their re-entry exchanges, then the destination.
        transport.delete([*delays, *group_queues], [*group_queues, destination])

    def depth(self, destination: str, group: str) -> int:
        transport = self._live()
        queue = _names.group_queue(destination, group)
        (ready,) = transport.declare([Queue(queue, passive=True)])
        with self._lock:
            subscriptions = [sub for sub in self._subscriptions if sub.queue == queue]
        held = sum(sub.in_flight() for sub in subscriptions)
        return ready + held + self._delayed(transport, destination, group)

    def error_code(self, error: BaseException) -> ErrorCode:
        return error_code(error)

    def as_native(self) -> object:
        """The ``pika.SelectConnection``. It belongs to the adapter's I/O thread: use it
        only through ``connection.ioloop.add_callback_threadsafe(...)``."""
        return self._transport.native()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._lock:
            subscriptions = list(self._subscriptions)
        try:
            for subscription in subscriptions:
                subscription.close()
        finally:
            if self._flush_thread is not None:
                self._flush_thread.stop()
            self._transport.close()

    # -- used by subscriptions ----------------------------------------------------------
    def _flusher(self) -> _Flusher:
        with self._lock:
            if self._flush_thread is None:
                self._flush_thread = _Flusher()
            return self._flush_thread

    def _live(self) -> Transport:
        """The open transport; after a loss a new one, at most once per backoff period
        (a throttle on reconnecting, not a retry: a failed attempt raises)."""
        transport = self._transport
        if transport.alive and not self._closed:
            return transport
        with self._lock:
            if self._closed:
                raise pika.exceptions.ConnectionWrongStateError("this client is closed")
            transport = self._transport
            if transport.alive:
                return transport
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise ConnectionDown(
                    f"the connection to RabbitMQ is lost; next attempt in {wait:.1f} s")
            transport.close()
            try:
                fresh: Transport = self._connect()
            except Exception:
                self._backoff = min(_MAX_BACKOFF, max(_FIRST_BACKOFF, self._backoff * 2))
                self._next_attempt = time.monotonic() + self._backoff
                raise
            self._backoff = 0.0
            self._transport = fresh
            self._exchanges.clear()
            self._declared.clear()
            return fresh

    def _redeliver(self, destination: str, group: str, raws: Sequence[Arrival],
                   delay: float | None, *, seen: bool) -> list[BaseException | None]:
        """Publish copies of ``raws`` for redelivery to ``group`` (after ``delay``); a
        delivery nobody ``seen`` keeps its count."""
        transport = self._live()
        reentry = self._reentry_exchange(transport, destination, group)
        exchange = reentry if not delay else self._delay_exchange(
            transport, destination, group, _names.delay_milliseconds(delay), reentry)
        publishes = []
        for _tag, routing, redelivered, props, body in raws:
            attempt = _wire.attempt_of(redelivered, props) - (0 if seen else 1)
            message_id = props.message_id or _wire.delivery(
                0, routing, redelivered, props, body, destination=destination).id
            publishes.append(Publish(exchange, routing, body, _wire.redelivery_properties(
                props, message_id, attempt)))
        outcomes = transport.publish(publishes)
        self._forget_missing(destination, outcomes)
        return outcomes

    # -- topology -----------------------------------------------------------------------
    def _require_exchange(self, transport: Transport, destination: str) -> None:
        if destination not in self._exchanges:
            transport.declare([Exchange(destination, passive=True)])
            self._exchanges.add(destination)

    def _send_delay_exchange(self, transport: Transport, destination: str, delay: float
                             ) -> str:
        milliseconds = _names.delay_milliseconds(delay)
        name = _names.send_delay_queue(destination, milliseconds)
        self._delay_queue(transport, destination, None, name, milliseconds=milliseconds,
                          target=destination)
        return name

    def _delay_exchange(self, transport: Transport, destination: str, group: str,
                        milliseconds: int, reentry: str) -> str:
        name = _names.group_delay_queue(destination, group, milliseconds)
        self._delay_queue(transport, destination, group, name, milliseconds=milliseconds,
                          target=reentry)
        return name

    def _delay_queue(self, transport: Transport, destination: str, group: str | None,
                     name: str, *, milliseconds: int, target: str) -> None:
        """Declare (again, when due) a delay queue and its entrance exchange."""
        now = time.monotonic()
        declared = self._declared.get(name)
        if declared is not None and now - declared < _names.redeclare_after(milliseconds):
            return
        expiry = _names.delay_queue_expiry(milliseconds)
        transport.declare([
            Exchange(name, auto_delete=True),
            Queue(name, delay_queue_arguments(milliseconds, target)),
            Binding(name, name),
        ])
        self._declared[name] = now
        with self._lock:
            self._delay_queues[destination][name] = (group, now + expiry / 1000)

    def _reentry_exchange(self, transport: Transport, destination: str, group: str) -> str:
        name = _names.group_queue(destination, group)
        if name not in self._declared:
            transport.declare([Exchange(name), Binding(name, name)])
            self._declared[name] = time.monotonic()
        return name

    def _delayed(self, transport: Transport, destination: str, group: str) -> int:
        """Messages waiting in the delay queues this connection used for the group."""
        now = time.monotonic()
        with self._lock:
            queues = self._delay_queues.get(destination, {})
            for name in [n for n, (_g, until) in queues.items() if until < now]:
                del queues[name]  # expired by now: it can hold nothing
            names = [name for name, (owner, _until) in queues.items()
                     if owner is None or owner == group]
        total = 0
        for name in names:
            try:
                (count,) = transport.declare([Queue(name, passive=True)])
            except pika.exceptions.ChannelClosedByBroker as error:
                if error.reply_code != 404:
                    raise
                count = 0  # another client deleted it: it holds nothing
            total += count
        return total

    def _forget_missing(self, destination: str, outcomes: Sequence[object]) -> None:
        """After a 404 on publish, nothing cached about the topology can be trusted."""
        if any(isinstance(outcome, pika.exceptions.ChannelClosed)
               and outcome.reply_code == 404 for outcome in outcomes):
            self._exchanges.discard(destination)
            self._declared.clear()


class RabbitSubscription(Subscription):
    """One consumer: a channel with ``basic.consume`` on the group's queue."""

    def __init__(self, driver: RabbitDriver, destination: str, group: str, queue: str,
                 prefetch: int) -> None:
        self._driver = driver
        self.destination = destination
        self.group = group
        self.queue = queue
        # basic.qos carries prefetch_count as a 16-bit number: a larger prefetch holds at
        # most that many (a bound on what is held, which holding fewer keeps).
        self._prefetch = min(prefetch, MAX_QOS)
        # The state below is guarded by _lock; _ready (on the same lock) signals a
        # waiting receive. Critical sections take the lock itself: a Condition's own
        # __enter__ and __exit__ are Python calls, and one runs for every delivery.
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._buffer: collections.deque[Arrival] = collections.deque()
        self._held: dict[int, Arrival] = {}  # unsettled deliveries of the current channel
        self._epoch = 0  # one per channel: ack ids of an older channel are stale
        self._waiting = 0  # receive_batch calls waiting (so a delivery knows to signal)
        self._failure: BaseException | None = None
        self._reported = False
        self._cancelled = -1  # the epoch whose consumer the broker cancelled (queue deleted)
        self._closed = False
        self._channel: ConsumerChannel | None = None
        self._requeue: list[tuple[int, Arrival]] = []  # nacked, to requeue soon (epoch, raw)
        self._flushing = threading.Lock()
        self._attach()

    # -- called on the transport's I/O thread (store and signal only) -------------------
    def _delivered(self, epoch: int, raws: Sequence[Arrival]) -> None:
        with self._lock:
            if epoch != self._epoch:
                return
            held = self._held
            for raw in raws:
                held[raw[0]] = raw
            self._buffer.extend(raws)
            if self._waiting:
                self._ready.notify()

    def _failed(self, epoch: int, error: BaseException) -> None:
        with self._lock:
            if epoch != self._epoch or self._failure is not None:
                return
            self._failure = error
            if isinstance(error, pika.exceptions.ConsumerCancelled):
                self._cancelled = epoch
            # The broker has these back already; handing them out would duplicate them.
            self._buffer.clear()
            self._held.clear()
            self._ready.notify_all()

    # -- the Subscription protocol --------------------------------------------------------
    def receive_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self._closed:
            raise pika.exceptions.ChannelWrongStateError("this consumer is closed")
        if self._failure is not None and self._reported:
            self._attach()  # the loss was reported by the previous call: re-attach now
        if self._requeue:
            self._flush_requeues()
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._buffer and self._failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._waiting += 1
                try:
                    self._ready.wait(remaining)
                finally:
                    self._waiting -= 1
            if not self._buffer:
                assert self._failure is not None
                self._reported = True
                raise self._failure
            buffer = self._buffer
            raws = [buffer.popleft() for _ in range(min(max_messages, len(buffer)))]
            epoch = self._epoch
        destination, delivery = self.destination, _wire.delivery
        return [delivery((epoch, raw[0]), raw[1], raw[2], raw[3], raw[4],
                         destination=destination) for raw in raws]

    def send_acks(self, ack_ids: Sequence[AckId]) -> None:
        tags: list[int] = []
        stale: list[AckId] = []
        with self._lock:  # one pass: this runs for every message consumed
            epoch, held = self._epoch, self._held
            live = self._failure is None and not self._closed
            for ack_id in ack_ids:
                of_epoch, tag = _parse_ack_id(ack_id)
                if live and of_epoch == epoch and held.pop(tag, None) is not None:
                    tags.append(tag)
                else:
                    stale.append(ack_id)
            channel = self._channel
        if tags and channel is not None:
            channel.ack(tags)
        if stale:
            raise self._stale(stale, "the broker has put them back and will deliver them "
                                     "again")

    def holds(self, ack_id: AckId) -> bool:
        # A closed channel (a lost connection, a re-attach) makes a new epoch and clears
        # what was held: the broker has those back and delivers them again.
        epoch, tag = _parse_ack_id(ack_id)
        return epoch == self._epoch and self._failure is None and tag in self._held

    def send_nacks(self, ack_ids: Sequence[AckId], delay: float | None) -> None:
        """Redeliver by re-publishing (see ``_republish``): without a delay soon after
        (see ``_requeue_soon``), with one through the group's delay queue."""
        channel, current, stale = self._take(ack_ids)
        if current:
            if delay is None:
                self._requeue_soon(current)
            else:
                self._republish(channel, current, delay)
        if stale and delay is not None:
            # Without a delay there is nothing left to do: the broker took them back when
            # their channel closed, counting one more delivery, exactly what a nack does.
            raise self._stale(stale, "the broker has put them back already, so their "
                                     "delay cannot apply")

    def close(self) -> None:
        """Stop the intake, give back what was received but never handed out, then close
        the channel, which returns everything else unsettled (the portable layer nacks
        what it handed out first). Idempotent.

        Deliveries still in the buffer were never seen by anyone, yet a requeue would
        count them as delivered (``x-delivery-count`` + 1, or the ``redelivered`` flag).
        So after ``basic.cancel`` they are re-published with their count unchanged and
        acked, and the next member sees the same ``attempt`` they would have shown here.
        """
        if self._closed:
            return
        self._closed = True
        channel = self._channel
        if channel is None:
            return
        try:
            if channel.stop():
                self._flush_requeues()  # now they cannot come back to this consumer
                with self._lock:
                    unseen = list(self._buffer)
                    self._buffer.clear()
                if unseen:
                    self._republish(channel, unseen, None, seen=False)
        finally:
            with self._lock:
                self._epoch += 1
                self._buffer.clear()
                self._held.clear()
            channel.close()

    def as_native(self) -> object:
        """The consumer's ``pika.channel.Channel`` (owned by the I/O thread, see
        ``RabbitDriver.as_native``)."""
        return self._channel.native() if self._channel is not None else None

    # -- internals ----------------------------------------------------------------------
    def in_flight(self) -> int:
        """Deliveries this consumer holds unsettled (buffered or handed out)."""
        with self._lock:
            return len(self._held)

    def _attach(self) -> None:
        transport = self._driver._live()
        with self._lock:
            self._epoch += 1
            epoch = self._epoch
            self._failure, self._reported = None, False
            self._buffer.clear()
            self._held.clear()
        old, self._channel = self._channel, None
        if old is not None:
            old.close()
        self._channel = transport.consume(self.queue, self._prefetch, _Sink(self, epoch))

    def _stale(self, stale: Sequence[AckId], consequence: str) -> BaseException:
        """The error for settling deliveries of a closed channel: where the broker closed
        it by cancelling the consumer, the queue was deleted and took them along."""
        if any(_parse_ack_id(ack_id)[0] == self._cancelled for ack_id in stale):
            return QueueDeleted(
                f"{len(stale)} deliveries came from {self.queue!r}, whose consumer the "
                "broker cancelled: the queue was deleted, and they with it")
        return StaleDelivery(f"{len(stale)} deliveries came on a channel that has closed "
                             f"since; {consequence}")

    def _take(self, ack_ids: Sequence[AckId]
              ) -> tuple[ConsumerChannel, list[Arrival], list[AckId]]:
        """Split ack ids into unsettled deliveries of the live channel and stale ones."""
        current: list[Arrival] = []
        stale: list[AckId] = []
        with self._lock:
            epoch, held = self._epoch, self._held
            live = self._failure is None and not self._closed
            for ack_id in ack_ids:
                of_epoch, tag = _parse_ack_id(ack_id)
                raw = held.get(tag) if live and of_epoch == epoch else None
                if raw is None:
                    stale.append(ack_id)
                else:
                    current.append(raw)
        channel = self._channel
        if current and channel is None:
            raise StaleDelivery("the consumer has no channel")
        return channel, current, stale  # type: ignore[return-value]

    def _settled(self, raws: list[Arrival]) -> None:
        with self._lock:
            for raw in raws:
                self._held.pop(raw[0], None)

    def _republish(self, channel: ConsumerChannel, raws: list[Arrival], delay: float | None,
                   *, seen: bool = True) -> None:
        """Redeliver ``raws`` by publishing copies, then acking the originals whose copy
        the broker confirmed (the rest stay unsettled and return when the channel closes).

        A requeue (``basic.nack``) would be cheaper, but the broker applies it some time
        after the frame leaves, and meanwhile the message is neither ready nor held:
        ``depth`` would read one short. Once the confirm is in, the copy is in its queue,
        and the original stays counted until then. The copy carries the deliveries so far
        in ``x-prior-deliveries``, so ``attempt`` goes on counting on either queue type.
        """
        outcomes = self._driver._redeliver(self.destination, self.group, raws, delay,
                                           seen=seen)
        done = [raw for raw, outcome in zip(raws, outcomes, strict=True) if outcome is None]
        if done:
            channel.ack([raw[0] for raw in done])
            self._settled(done)
        failure = next((outcome for outcome in outcomes if outcome is not None), None)
        if failure is not None:
            raise failure

    def _requeue_soon(self, raws: list[Arrival]) -> None:
        """Redeliver nacked deliveries at the next ``receive_batch``, at ``close`` or
        within ``REQUEUE_WITHIN`` seconds, whichever comes first.

        Redelivered at once, a message goes straight back to this consumer if it has
        room; when the consumer then closes (the portable layer nacks what it holds right
        before closing) the broker takes it back a second time and counts a delivery
        nobody saw. Held back until the intake is stopped, it is counted once. Until
        then it stays unsettled here, and ``depth`` counts it.
        """
        with self._lock:
            epoch, first = self._epoch, not self._requeue
            self._requeue.extend((epoch, raw) for raw in raws)
        if first:
            self._driver._flusher().schedule(self, time.monotonic() + REQUEUE_WITHIN)

    def _flush_requeues(self) -> None:
        with self._flushing:
            with self._lock:
                pending, self._requeue = self._requeue, []
                live = self._failure is None
                raws = [raw for epoch, raw in pending
                        if live and epoch == self._epoch and raw[0] in self._held]
            channel = self._channel
            if raws and channel is not None:  # else the closed channel returned them
                self._republish(channel, raws, None)


def _parse_ack_id(ack_id: AckId) -> tuple[int, int]:
    epoch: int
    tag: int
    try:
        epoch, tag = ack_id  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{ack_id!r} is not an ack id of the RabbitMQ adapter") from None
    return epoch, tag


class _Flusher:
    """One thread per connection that requeues nacked deliveries whose consumer did not
    call ``receive_batch`` or ``close`` soon enough (see ``_requeue_soon``)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: dict[RabbitSubscription, float] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="messaging-rabbitmq-requeue",
                                        daemon=True)
        self._thread.start()

    def schedule(self, subscription: RabbitSubscription, when: float) -> None:
        with self._wake:
            self._due.setdefault(subscription, when)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    now = time.monotonic()
                    due = [sub for sub, when in self._due.items() if when <= now]
                    if due:
                        for subscription in due:
                            del self._due[subscription]
                        break
                    nearest = min(self._due.values(), default=now + 60.0)
                    self._wake.wait(nearest - now)
                if self._stopped:
                    return
            for subscription in due:
                try:
                    subscription._flush_requeues()
                except Exception:
                    # Nobody waits for this call: the messages stay unsettled on their
                    # channel and return when it closes, so the failure is only logged.
                    log.warning("requeueing nacked messages of %r failed; they return "
                                "when the consumer closes", subscription.queue,
                                exc_info=True)


class _Sink:
    """Binds one channel's callbacks to the subscription epoch it was opened for."""

    __slots__ = ("_epoch", "_subscription")

    def __init__(self, subscription: RabbitSubscription, epoch: int) -> None:
        self._subscription = subscription
        self._epoch = epoch

    def deliver(self, arrivals: Sequence[Arrival]) -> None:
        self._subscription._delivered(self._epoch, arrivals)

    def failed(self, error: BaseException) -> None:
        self._subscription._failed(self._epoch, error)
