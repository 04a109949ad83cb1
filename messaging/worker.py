"""The worker loop behind ``Consumer.run``.

Delivery semantics
------------------
* Bounded in-flight work: at most ``concurrency`` handlers run, and the worker holds at
  most ``max(prefetch, concurrency)`` messages in all (running, waiting in a lane, or
  received and waiting for a slot), so a slow handler slows the intake instead of
  filling memory (backpressure). ``prefetch`` is the consumer's (100 by default).
  Within that bound the worker holds no more waiting messages than its handlers, at
  their average speed so far, will start within :data:`~messaging.intake.HORIZON` (a
  second): quick handlers get batches of up to ``prefetch``, slow ones about a message
  per slot, so slow work spreads over a group's members instead of waiting in one of
  them. Until a handler has finished, the worker takes a message per slot.
* Batches, not round trips: the worker receives many messages per call (it tops up when
  fewer than half of what it may hold, or fewer than ``concurrency``, wait for a slot),
  and a handler thread that finishes takes the next waiting message itself. The acks of
  handlers that return without settling are sent in batches by an
  :class:`~messaging.ack_batcher.AckBatcher`. So a worker with quick handlers makes a
  broker call per batch, not two per message.
* One key in order, different keys in parallel: messages with the same key are handed
  to one lane and run one after another in arrival order; keyless messages run freely.
  When a message is given back for a retry, the later messages of its key that the
  worker holds are given back too, so the retry is not overtaken (they are redelivered
  after it, with their ``attempt`` one higher), where the backend keeps a key in order
  (``ordering == "per_key"``); elsewhere they run.
* Taken-back messages are not handled: before a handler starts, the worker asks the
  backend whether the message is still this consumer's (``Subscription.holds``); one
  whose partition moved to another member, or whose channel closed, while it waited is
  skipped, because the group delivers it again anyway.
* Held messages stay invisible: where the backend has a visibility timeout, every
  message the worker holds (running, or waiting) is extended every half lease until it
  is settled or given back (:mod:`messaging.lease`).
* Graceful stop (``stop_event``, SIGTERM or SIGINT): no new messages are taken, running
  handlers finish and are settled, their acks are sent, and messages received but not
  started are given back unacked in one batch (redelivered later). Then the consumer
  closes. A handler that raises ``SystemExit`` (``sys.exit()``) stops the worker the
  same way; its message is given back unsettled, and ``run`` then raises that
  ``SystemExit`` in the caller's thread, so the program ends with its status.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from messaging import middleware
from messaging.ack_batcher import AckBatcher
from messaging.errors import ConfigurationError, ConnectionFailed, MessagingError
from messaging.intake import Pace
from messaging.lease import kept_invisible
from messaging.message import PENDING, Message, Settlement
from messaging.retry import Retry

if TYPE_CHECKING:
    from messaging.consumer import Consumer, Handler
    from messaging.driver import AckId

log = logging.getLogger("messaging.worker")

_POLL = 0.5  # seconds a receive waits before the loop looks at the stop flag again
_MAX_OUTAGE_WAIT = 30.0
_RUNNING_POLL = 0.01  # seconds between looks while a hand-over waits for handlers


class Worker:
    def __init__(self, consumer: Consumer, handler: Handler, concurrency: int,
                 retry: Retry | None, stop_event: threading.Event | None) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if not callable(handler):
            raise ConfigurationError("handler must be callable")
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
                getattr(handler, "__call__", None)):  # noqa: B004 (an async __call__)
            # Called from a thread it would return a coroutine nobody awaits, and the
            # message would be acked unhandled.
            raise ConfigurationError(
                f"handler {getattr(handler, '__name__', handler)!r} is async: run() calls "
                "handlers in threads; pass a plain function (it may call asyncio.run)")
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigurationError(f"retry must be a messaging.Retry or None, got {retry!r}")
        if stop_event is not None and not all(
                callable(getattr(stop_event, name, None)) for name in ("is_set", "wait", "set")):
            # Duck-typed: a multiprocessing.Event (no threading.Event subclass) works too.
            raise ConfigurationError(
                f"stop_event must be an event (threading.Event, multiprocessing.Event) or "
                f"None, got {stop_event!r}")
        self.consumer = consumer
        self.concurrency = concurrency
        self.stop = stop_event or threading.Event()
        self._acks = AckBatcher(consumer)
        policy = retry or Retry()
        self.handle = middleware.retry_or_dead_letter(
            middleware.settle(handler, self._acks.ack), policy,
            consumer.capabilities.max_delay, self.stop
        )
        self._most = max(concurrency, consumer._options.prefetch)
        # Only a backend that redelivers a key in order makes a give-back keep the order.
        # Elsewhere it would cost the later messages an attempt each and send them back
        # to be redelivered in any order: a handler waiting for the retried one (an
        # event fold) would then keep missing it.
        self._in_order = consumer.capabilities.ordering == "per_key"
        self._pace = Pace()  # of the handlers: the loop sizes the intake by it
        # Until a handler has run its speed is unknown: a message per slot, as if slow.
        self._limit = concurrency
        self._low_water = concurrency
        # Everything below is guarded by _lock; _state is a Condition on it (taken as
        # the bare lock on the hot paths: a Condition's own enter/exit are Python calls).
        self._lock = threading.Lock()
        self._state = threading.Condition(self._lock)
        self._ready: collections.deque[Message] = collections.deque()
        self._lanes: dict[str, collections.deque[Message]] = {}
        self._held = 0  # received and not finished: ready, in lanes, or running
        self._running = 0  # handler threads at work
        self._wake = False  # a slot was freed or the ready queue ran low
        self._halted = False  # the loop ended (or must): handler threads start nothing new
        self._exit: BaseException | None = None  # a handler's SystemExit, raised by run()
        # Messages whose handler may be running: added before the backend is asked
        # whether the message is still held, so a hand-over that makes it not held and
        # then looks here (finish_running) cannot miss one (set.add and list(set) are
        # atomic: no lock on this per-message path).
        self._active: set[Message] = set()
        self._outage = 0.0

    def run(self) -> None:
        self.consumer._running_wait = self.finish_running
        try:
            # Exits run in reverse: the pool's threads finish, then their acks are sent,
            # then the keeper stops; then the consumer gives back what was not started.
            with kept_invisible(self.consumer), self._signals(), self._acks, \
                    ThreadPoolExecutor(self.concurrency,
                                       thread_name_prefix="messaging-worker") as pool:
                try:
                    self._loop(pool)
                finally:
                    self._drain()
                    self.consumer._running_wait = None
        except BaseException:
            try:
                self.consumer.close()
            except Exception as error:  # the loop's own error is the one to raise
                log.warning("closing the consumer after the worker failed also failed: %s",
                            error)
            raise
        self.consumer.close()
        if self._exit is not None:
            # sys.exit() in a handler ends the program as it would without threads (with
            # its status), once the stop it caused has finished the other handlers.
            raise self._exit

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        consumer = self.consumer
        # A consumer closed by another thread (client.close() at shutdown, say) gave
        # back what it held: the loop ends as if stopped, and run() returns.
        while not (self.stop.is_set() or self._halted or consumer._closed):
            with self._lock:
                self._resize()
                starts = []
                while self._running < self.concurrency:
                    message = self._next_ready()
                    if message is None:
                        break
                    self._running += 1
                    starts.append(message)
                room = self._limit - self._held if len(self._ready) < self._low_water else 0
                slot_free = self._running < self.concurrency
                self._wake = False
            for message in starts:
                pool.submit(self._work, message)
            if room > 0:
                # With a slot free there is nothing to do but wait for messages; with
                # every slot busy, top up with what is there now, without waiting.
                batch = self._receive(room, _POLL if slot_free else 0.0)
                if batch:
                    with self._lock:
                        self._held += len(batch)
                        self._ready.extend(batch)
                    continue
                if slot_free:
                    continue  # the receive waited already
            with self._lock:
                if not self._wake:
                    self._state.wait(_POLL)

    def _receive(self, count: int, timeout: float) -> list[Message]:
        """A lost connection pauses the loop instead of ending it: the broker comes back
        and the worker carries on (unsettled messages are redelivered meanwhile)."""
        try:
            batch = self.consumer.receive(count, timeout=timeout)
        except MessagingError as error:
            if self.consumer._closed:
                return []  # closed from outside: the loop ends
            if not isinstance(error, ConnectionFailed):
                raise
            self._outage = min(_MAX_OUTAGE_WAIT, max(_POLL, self._outage * 2))
            log.warning("receive failed, retrying in %.1f s: %s", self._outage, error)
            self.stop.wait(self._outage)
            return []
        self._outage = 0.0
        return batch

    def _next_ready(self) -> Message | None:
        """The next received message that may start now; one whose key is busy goes to
        its key's lane instead. Call with ``_lock`` held."""
        ready = self._ready
        while ready:
            message = ready.popleft()
            key = message.key
            if key is None:
                return message
            lane = self._lanes.get(key)
            if lane is None:
                self._lanes[key] = collections.deque()
                return message
            lane.append(message)  # runs after the earlier message of its key
        return None

    def _work(self, message: Message | None) -> None:
        """A handler thread: run ``message``, then whatever may run next, until nothing
        may (then the slot is free)."""
        while message is not None:
            carry_on = True
            started: float | None = None
            active = self._active
            active.add(message)  # before the question below: see _active
            try:
                # A message the backend took back while it waited here (its partition
                # moved, its channel closed) is the group's next owner's to handle now.
                if self.consumer._still_held(message):
                    started = time.monotonic()
                    self.handle(message)
                else:
                    log.debug("message %s was taken back by the backend before its "
                              "handler started; the group delivers it again", message.id)
            except Exception:
                log.exception("settling message %s failed; it will be redelivered",
                              message.id)
                self.consumer._let_go(message)
            except BaseException as exit_:
                carry_on = False  # SystemExit or the like from a handler: stop
                with self._lock:
                    self._exit = self._exit or exit_
                raise
            finally:
                active.discard(message)
                # Even past a SystemExit the slot is accounted for, or the stop would
                # wait for it forever.
                seconds = None if started is None else time.monotonic() - started
                message = self._finish(message, seconds, carry_on)

    def _finish(self, message: Message, seconds: float | None, carry_on: bool = True
                ) -> Message | None:
        """Account for ``message`` being done (its handler took ``seconds``; None: it
        did not run) and pick this thread's next one: the next of its key, else the
        next ready message (none once stopping, or without ``carry_on``)."""
        key = message.key
        if key is not None and message.settlement is Settlement.NACKED and self._in_order:
            # Its retry must not be overtaken by later messages of its key: give them
            # back too, so the broker redelivers the key in order.
            self._give_back_rest(key, message.id)
        following: Message | None = None
        with self._lock:
            if seconds is not None:
                self._pace.record(seconds)
            if not carry_on:
                self._halted = True
            stopping = self._halted or self.stop.is_set()
            self._held -= 1
            # (A give-back that emptied the key's lane removed it.)
            if key is not None and (lane := self._lanes.get(key)) is not None:
                if lane and not stopping:
                    following = lane.popleft()
                elif not lane:
                    del self._lanes[key]
            before = len(self._ready)
            if following is None and not stopping:
                following = self._next_ready()
            if following is None:
                self._running -= 1
                self._wake = True
                self._state.notify_all()
            elif before >= self._low_water > len(self._ready):
                self._wake = True  # just ran low: the loop tops up
                self._state.notify_all()
        return following

    def finish_running(self, leaving: Callable[[AckId], bool], timeout: float) -> None:
        """``SubscriptionOptions.finish_running``: wait, at most ``timeout`` seconds,
        until no handler runs unsettled on a message whose ack id ``leaving`` accepts.
        A handler that acked (its ack may wait for the backend) or nacked counts as done:
        its outcome is already the consumer's. Polls: the settlement that ends the wait
        happens in the handler's thread, outside the worker's lock."""
        deadline = time.monotonic() + timeout
        while True:
            running = [m for m in list(self._active)
                       if m._state is PENDING and leaving(m._ack_id)]
            if not running:
                return
            if time.monotonic() >= deadline:
                log.warning("%d handler(s) still running after %.1f s on messages the "
                            "backend is taking away; the next owner delivers them again",
                            len(running), timeout)
                return
            time.sleep(_RUNNING_POLL)

    def _give_back_rest(self, key: str, retried: str) -> None:
        """Nack every held message of ``key`` but the retried message ``retried`` itself
        (its redelivery may be back already: it runs next), in one driver call, until
        none arrived while the nack travelled. Meanwhile the key's lane stays, so that
        nothing of the key starts. Never raises: the slot must be accounted for whatever
        the broker says."""
        while True:
            with self._lock:
                lane = self._lanes[key]
                rest = [m for m in lane if m.id != retried]
                kept_lane = [m for m in lane if m.id == retried]
                lane.clear()
                lane.extend(kept_lane)
                kept: collections.deque[Message] = collections.deque()
                for waiting in self._ready:
                    (rest if waiting.key == key and waiting.id != retried
                     else kept).append(waiting)
                self._ready = kept
                self._held -= len(rest)
                if not rest:
                    if not lane:
                        del self._lanes[key]
                    return
            # Never started, so still pending: claimed and given back in one call.
            for later in rest:
                later._claim(Settlement.NACKED)
            try:
                self.consumer._settle_nacks(rest, None)
            except Exception:
                log.exception("giving back %d message(s) of key %r failed; they will be "
                              "redelivered", len(rest), key)

    def _resize(self) -> None:
        """Size the intake by the handlers' average time: quick handlers get the whole
        ``prefetch`` in batches, slow ones about a message per slot, so that a group's
        members share slow work instead of one of them holding what it will not start
        for minutes (until a handler has finished: a message per slot). Call with
        ``_lock`` held."""
        self._limit = self._pace.limit(self.concurrency, self._most)
        self._low_water = max(self.concurrency, self._limit // 2)

    def _drain(self) -> None:
        with self._lock:
            self._halted = True
            while self._running:
                self._state.wait()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT set the stop flag, in the main thread only (Python's rule)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, _frame: object) -> None:
            log.info("signal %d: finishing in-flight messages, then stopping", signum)
            self.stop.set()

        stop_signals = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, request_stop) for sig in stop_signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
