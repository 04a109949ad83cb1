"""``Consumer``: receive, settle, seek, and run a worker loop.

Delivery semantics
------------------
At-least-once. The consumer joins its group when it is created (so the group exists
from the first ``consumer()`` call, DESIGN contract 11). Every received message is
tracked until it is settled; ``close()`` gives every unsettled one back to the group at
once (it is redelivered with ``attempt`` + 1) instead of letting it wait for the
visibility timeout. ``ack()`` reaches the broker before it returns; ``ack_many`` settles
a whole batch in one driver call.

Errors
------
``UnsupportedFeature`` at the call for ``seek`` without ``replay``, a ``delay`` over
``max_delay``, ``extend`` or ``visibility_timeout`` where the backend lacks them;
``ConfigurationError`` for bad names and arguments; the driver's table otherwise. A
closed consumer raises ``MessagingError`` on use. A settlement that raises leaves its
messages pending, to be settled again or given back at close; one whose destination was
deleted meanwhile is no error (``guard.settlement_errors``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from messaging import checks, forks
from messaging.capabilities import Capabilities
from messaging.codecs import Codec, checked_codec
from messaging.dead_letter import dead_letter
from messaging.driver import AckId, SeekTarget, Subscription, SubscriptionOptions
from messaging.errors import (
    ConfigurationError,
    MessagingError,
    UnsupportedFeature,
)
from messaging.guard import native_errors, settlement_errors
from messaging.intake import HORIZON, Pace
from messaging.message import ACKED, PENDING, Message, Settlement

if TYPE_CHECKING:
    from messaging.client import Client
    from messaging.retry import Retry

log = logging.getLogger("messaging.consumer")

Handler = Callable[[Message], object]


class Consumer:
    """A member of ``group`` on ``destination``."""

    def __init__(
        self,
        client: Client,
        destination: str,
        group: str,
        *,
        visibility_timeout: float | None,
        prefetch: int,
        dead_letter: str | None,
        codec: Codec,
    ) -> None:
        self.destination = checks.check_name("destination", destination)
        self.group = checks.check_name("group", group)
        self.dead_letter = None if dead_letter is None else self._check_dead_letter(dead_letter)
        self._kept_letters: set[str] = set()  # dead-letter destinations _keep_letters did
        self.codec = codec
        self._codec = checked_codec(codec)  # what Message.value decodes with
        self._client = client
        self.capabilities: Capabilities = client.capabilities_for(destination)
        self._options = SubscriptionOptions(
            visibility_timeout=self._check_visibility(visibility_timeout),
            prefetch=_check_prefetch(prefetch),
            acked_unsent=self._acked_unsent,
            finish_running=self._finish_running,
        )
        # While run() works: its wait for running handlers (SubscriptionOptions).
        self._running_wait: Callable[[Callable[[AckId], bool], float], None] | None = None
        self._worker_running = False  # run() is under way (guarded by _lock)
        self._outstanding: dict[AckId, Message] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._subscription = self._subscribe()
        self._generation = forks.generation  # the process the subscription belongs to
        if self.dead_letter is not None:
            self._keep_letters(self.dead_letter)

    # -- receiving --------------------------------------------------------------------
    def receive(self, max_messages: int = 10, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages, waiting at most ``timeout`` seconds for the
        first; [] when none came, or when another thread closed the consumer meanwhile
        (which also ends iteration)."""
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
            raise ConfigurationError(f"max_messages must be an int >= 1, got {max_messages!r}")
        timeout = checks.check_seconds("timeout", timeout, zero=True)
        subscription = self._live()
        try:
            with native_errors(self._client._driver, "receive from %r", self.destination):
                deliveries = subscription.receive_batch(max_messages, timeout)
        except MessagingError:
            if self._closed:
                return []  # closed by another thread while this one waited: no failure
            raise
        messages = [Message(delivery, self) for delivery in deliveries]
        with self._lock:
            closed = self._closed
            if not closed:
                # A dict built in one comprehension: feeding update() (key, value) pairs
                # from a generator costs twice as much per message.
                self._outstanding.update({m._ack_id: m for m in messages})
        if closed:
            self._give_back_quietly(messages)
            return []
        return messages

    def __iter__(self) -> Iterator[Message]:
        """Messages forever, until the consumer closes (from another thread too).

        They are fetched in batches sized by how long the loop's body takes per message
        (:mod:`messaging.intake`): up to ``prefetch`` for quick work, about one for slow
        work, so that slow work is shared by the group's members and held messages do not
        outlive a visibility timeout while they wait their turn. One the backend took back
        while it waited in the batch (a Kafka partition that moved, a RabbitMQ channel that
        closed) is not yielded: the group delivers it again."""
        pace = Pace()
        most = self._options.prefetch
        visibility = self._options.visibility_timeout
        horizon = None if visibility is None else min(HORIZON, visibility / 2)
        clock = time.monotonic
        while not self._closed:
            for message in self.receive(pace.limit(1, most, horizon), timeout=1.0):
                if self._still_held(message):
                    started = clock()
                    yield message
                    pace.record(clock() - started)

    def seek(self, target: SeekTarget | dt.datetime) -> None:
        """Move the group to ``"beginning"``, ``"end"``, a datetime or a ``position``."""
        if not self.capabilities.replay:
            raise UnsupportedFeature(f"{self._client.url}: this backend has no replay/seek")
        if isinstance(target, dt.datetime):
            if target.utcoffset() is None:
                # Python reads a naive datetime as local time, which differs between the
                # service and the broker's clock (and between machines): refused here once.
                raise ConfigurationError(
                    f"seek needs a timezone-aware datetime, got {target!r} (for example "
                    "datetime.now(timezone.utc))")
        elif not isinstance(target, str):
            raise ConfigurationError(f"cannot seek to {target!r}")
        with native_errors(self._client._driver, f"seek {self.destination!r}"):
            self._live().seek(target)

    # -- settlement (called by Message and the worker) -----------------------------------
    def ack_many(self, messages: Iterable[Message]) -> None:
        """Ack many messages in one driver call (already-acked ones are skipped). When
        it raises, the messages it claimed are pending again, as in ``Message.ack``."""
        if isinstance(messages, Message) or not isinstance(messages, Iterable):
            raise ConfigurationError(
                f"ack_many takes a list of messages (message.ack() acks one), got "
                f"{type(messages).__name__}")
        claimed: list[Message] = []
        for message in messages:  # Message._claim inlined: this runs for every message
            if not isinstance(message, Message) or message._consumer is not self:
                for done in claimed:
                    done._unclaim(ACKED)
                raise self._not_ours(message)
            if message._state is PENDING:
                message._state = ACKED
                claimed.append(message)
            else:
                message._claim(ACKED)  # a no-op if acked, else AlreadySettled
        try:
            self._settle_acks(claimed)
        except BaseException:
            for message in claimed:
                message._unclaim(ACKED)
            raise

    def _not_ours(self, item: object) -> ConfigurationError:
        if not isinstance(item, Message):
            return ConfigurationError(f"ack_many takes messages, got {type(item).__name__}")
        # Its ack id means something only to the subscription that handed it out: another
        # consumer's driver would ack the wrong record or none, and the message would
        # look acked while its own group delivers it again.
        return ConfigurationError(
            f"message {item.id} was received by another consumer (of {item.destination!r} "
            f"as {item._consumer.group!r}); ack it with message.ack() or that consumer's "
            "ack_many")

    def _settle_acks(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        subscription = self._live()
        with settlement_errors(self._client._driver, "ack on %r", self.destination):
            subscription.send_acks([m._ack_id for m in messages])
        self._forget(messages)

    def _settle_nacks(self, messages: Sequence[Message], delay: float | None) -> None:
        subscription = self._live()
        with settlement_errors(self._client._driver, "nack on %r", self.destination):
            subscription.send_nacks([m._ack_id for m in messages], delay)
        self._forget(messages)

    def _dead_letter(self, message: Message, reason: str, error: BaseException | None) -> None:
        dead_letter(self, self._live(), message, destination=self.dead_letter, reason=reason,
                    error=error)
        self._forget([message])

    def _check_delay(self, delay: float | None) -> float | None:
        return checks.check_delay(delay, self.capabilities)

    def _extend(self, message: Message, seconds: float) -> None:
        if not self.capabilities.extend:
            raise UnsupportedFeature("this backend cannot extend a message's visibility")
        self._extend_many([message], checks.check_seconds("extend", seconds))

    def _extend_many(self, messages: Sequence[Message], seconds: float) -> None:
        with native_errors(self._client._driver, f"extend on {self.destination!r}"):
            self._live().extend([m._ack_id for m in messages], seconds)

    def _still_held(self, message: Message) -> bool:
        """False when the backend has taken ``message`` back from this consumer (see
        ``Subscription.holds``): it is then released and forgotten, because settling it
        could no longer take effect, and the group delivers it again."""
        if self._subscription.holds(message._ack_id):
            return True
        if message._release():
            self._forget([message])
        return False

    def _unsettled(self) -> list[Message]:
        """The messages received and not yet settled (for the lease keeper)."""
        with self._lock:
            return [m for m in self._outstanding.values()
                    if m.settlement is Settlement.PENDING]

    def _acked_unsent(self) -> list[AckId]:
        """What ``SubscriptionOptions.acked_unsent`` asks for: a message stays
        outstanding until its ack was sent, and is marked acked before that."""
        with self._lock:
            return [ack_id for ack_id, message in self._outstanding.items()
                    if message._state is Settlement.ACKED]

    def _finish_running(self, leaving: Callable[[AckId], bool], timeout: float) -> None:
        """What ``SubscriptionOptions.finish_running`` asks for: only a worker runs
        handlers, so without one there is nothing to wait for."""
        wait = self._running_wait
        if wait is not None:
            wait(leaving, timeout)

    def _lease(self) -> float | None:
        """Seconds a delivery stays invisible to the group, as the subscription has it."""
        with native_errors(self._client._driver, f"lease on {self.destination!r}"):
            return self._live().lease()

    def _forget(self, messages: Iterable[Message]) -> None:
        with self._lock:
            forget = self._outstanding.pop
            for message in messages:
                forget(message._ack_id, None)

    # -- worker loop --------------------------------------------------------------------
    def run(
        self,
        handler: Handler,
        concurrency: int = 1,
        retry: Retry | None = None,
        dead_letter: str | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        """Process messages until ``stop_event`` is set or SIGTERM/SIGINT arrives, then
        finish in-flight work, give back what was not started, and close. At most
        ``max(prefetch, concurrency)`` messages are held at a time, fewer for slow
        handlers; they are received in batches, and the acks of handlers that return
        without settling are sent in batches (see :mod:`messaging.worker`). A handler's
        ``SystemExit`` stops the worker the same way, and is then raised here. Closing the
        consumer (or its client) from another thread ends the loop too, and run() returns.
        Handlers run in threads, so an ``async def`` handler is refused
        (``ConfigurationError``), as is a second run() while one is under way."""
        from messaging.worker import Worker

        if dead_letter is not None:
            self.dead_letter = self._check_dead_letter(dead_letter)
            self._keep_letters(dead_letter)
        worker = Worker(self, handler, concurrency, retry, stop_event)
        with self._lock:
            if self._worker_running:
                # Two loops would share one set of held messages and one revocation
                # wait, each settling what the other counts as its own.
                raise ConfigurationError(
                    f"consumer of {self.destination!r} is already running a worker; for "
                    "more handlers raise concurrency, or make another consumer")
            self._worker_running = True
        try:
            worker.run()
        finally:
            self._worker_running = False

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Give back unsettled messages and leave the group. Idempotent. A destination
        deleted meanwhile took its messages along: there is nothing to give back, and
        that is no error (a service stopping after a teardown or a migration)."""
        if self._closed:
            return
        # Made before this process was forked, the subscription and what it holds are
        # the parent's, which closes them itself.
        inherited = self._generation != forks.generation
        with self._lock:
            pending = [] if inherited else [m for m in self._outstanding.values()
                                            if m._release()]
            self._outstanding.clear()
            self._closed = True
        if inherited:
            return
        driver = self._client._driver
        try:
            if pending:
                with settlement_errors(driver, "release on %r", self.destination):
                    self._subscription.send_nacks([m._ack_id for m in pending], None)
        finally:
            # Settlement errors too: a Kafka member commits what was acked as it leaves.
            with settlement_errors(driver, "close consumer of %r", self.destination):
                self._subscription.close()
            self._client._forget_consumer(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def as_native(self) -> object:
        """The client library's consumer object (escape hatch)."""
        return self._subscription.as_native()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Consumer {self.destination!r} group={self.group!r} {state} {self._client.url}>"

    # -- internals ----------------------------------------------------------------------
    def _subscribe(self) -> Subscription:
        driver = self._client._live_driver()

        def subscribe() -> Subscription:
            with native_errors(driver, "subscribe to %r as %r", self.destination, self.group):
                return driver.subscribe(self.destination, self.group, self._options)

        return self._client._creating(self.destination, subscribe)

    def _check_dead_letter(self, name: str) -> str:
        checks.check_name("dead_letter", name)
        if name == self.destination:
            # Each letter would arrive here again as a new message with attempt 1, fail
            # again and be lettered again: a loop that never ends.
            raise ConfigurationError(
                f"dead_letter {name!r} is the destination consumed: letters would come "
                "straight back; use another destination (such as "
                f"{self.destination + '.dlq'!r})")
        return name

    def _letter_groups(self) -> tuple[str, ...]:
        """The groups a dead-letter destination gets so that letters sent to it wait for
        a reader: this consumer's own, on every backend (decision 0014). Without replay a
        destination keeps a message only for the groups that existed when it was sent
        (contract 11); with replay a group made later would start past the letters."""
        return (self.group,)

    def _keep_letters(self, dead_letter: str) -> None:
        """Declare this consumer's group on ``dead_letter`` (see ``_letter_groups``),
        once, before any letter is sent: on RabbitMQ and SQS a letter sent to a
        destination no group reads is dropped by the broker, and where the backend
        replays, a group made later starts past it. Only where destinations are created
        on demand (``auto_create``); otherwise the topology is the user's. The
        declaration is idempotent and keeps what is there."""
        if dead_letter in self._kept_letters or not self._client._auto_create:
            return
        try:
            self._client.admin.create(dead_letter, groups=self._letter_groups())
        except MessagingError as error:
            # Credentials that may not create: a group declared by whoever may is what
            # keeps letters then, so the consumer still works.
            log.warning("could not declare group %r on dead-letter destination %r, so "
                        "letters are kept only for the groups it has: %s",
                        self.group, dead_letter, error)
            return
        self._kept_letters.add(dead_letter)

    def _let_go(self, message: Message) -> None:
        """Let go of a message the worker is done with although it could not settle it
        (a give-back that failed too): given back if the broker takes it now, and
        released and forgotten either way, so that the lease keeper does not keep it
        invisible, unhandled, for as long as the worker runs. The group delivers it again
        once its lease runs out, or once this member leaves."""
        if message._release():
            self._give_back_quietly([message])
            self._forget([message])

    def _give_back_quietly(self, messages: Sequence[Message]) -> None:
        """Give back ``messages`` where a failure is nothing to report (logged, never
        raised). Used for what a receive fetched while another thread closed the consumer:
        close() gave back only what it knew of, and these may even be what it gave back,
        fetched again; where the backend keeps a lease they would otherwise wait out the
        visibility timeout, and where closing took them back already (a Kafka partition,
        a RabbitMQ channel) the give-back fails, and that is no error. And for a message
        the worker lets go (``_let_go``), whose settlement has failed once already."""
        if not messages:
            return
        try:
            with native_errors(self._client._driver, f"release on {self.destination!r}"):
                self._subscription.send_nacks([m._ack_id for m in messages], None)
        except MessagingError as error:
            log.debug("giving back %d message(s) failed; they come back once their "
                      "lease runs out or this member leaves: %s", len(messages), error)

    def _live(self) -> Subscription:
        if self._closed:
            raise MessagingError(f"consumer of {self.destination!r} is closed")
        if self._generation != forks.generation:
            raise MessagingError(
                f"consumer of {self.destination!r} was made before this process was "
                "forked, and its subscription is the parent's; make consumers in the "
                "process that uses them (the client itself reconnects here)")
        return self._subscription

    def _check_visibility(self, seconds: float | None) -> float | None:
        if seconds is None:
            return None
        seconds = checks.check_seconds("visibility_timeout", seconds)
        if not self.capabilities.visibility_timeout:
            raise UnsupportedFeature("this backend has no per-consumer visibility timeout")
        return seconds


def _check_prefetch(prefetch: int) -> int:
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
        raise ConfigurationError(f"prefetch must be an int >= 1, got {prefetch!r}")
    return prefetch
