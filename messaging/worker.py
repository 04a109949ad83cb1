"""The worker loop behind ``Consumer.run``.

Delivery semantics
------------------
* Bounded in-flight work: at most ``concurrency`` handlers run, and the loop receives
  only as many messages as there are free slots, so a slow handler slows the intake
  instead of filling memory (backpressure).
* One key in order, different keys in parallel: messages with the same key are handed
  to one lane and run one after another in arrival order; keyless messages run freely.
  When a message is given back for a retry, the later messages of its key that the
  worker holds are given back too, so the retry is not overtaken (they are redelivered
  after it, with their ``attempt`` one higher).
* Held messages stay invisible: where the backend has a visibility timeout, every
  message the worker holds (running, or waiting in its lane) is extended every half
  lease until it is settled or given back (:mod:`messaging.lease`).
* Graceful stop (``stop_event``, SIGTERM or SIGINT): no new messages are taken, running
  handlers finish and are settled, and messages received but not started are given back
  unacked (redelivered later). Then the consumer closes.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from messaging import middleware
from messaging.errors import ConfigurationError, ConnectionFailed
from messaging.lease import kept_invisible
from messaging.message import Message, Settlement
from messaging.retry import Retry

if TYPE_CHECKING:
    from messaging.consumer import Consumer, Handler

log = logging.getLogger("messaging.worker")

_POLL = 0.5  # seconds a receive waits before the loop looks at the stop flag again
_MAX_OUTAGE_WAIT = 30.0


class Worker:
    def __init__(self, consumer: Consumer, handler: Handler, concurrency: int,
                 retry: Retry | None, stop_event: threading.Event | None) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if not callable(handler):
            raise ConfigurationError("handler must be callable")
        self.consumer = consumer
        self.concurrency = concurrency
        self.stop = stop_event or threading.Event()
        policy = retry or Retry()
        self.handle = middleware.retry_or_dead_letter(
            middleware.settle(handler), policy, consumer.capabilities.max_delay, self.stop
        )
        self._free = threading.Semaphore(concurrency)
        self._lanes: dict[str, collections.deque[Message]] = {}
        self._lanes_lock = threading.Lock()
        self._idle = threading.Condition()
        self._running = 0
        self._outage = 0.0

    def run(self) -> None:
        # Exits run in reverse: the pool's threads finish before the keeper stops.
        with kept_invisible(self.consumer), self._signals(), ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="messaging-worker"
        ) as pool:
            try:
                self._loop(pool)
            finally:
                self._drain()
        self.consumer.close()

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        while not self.stop.is_set():
            if not self._free.acquire(timeout=_POLL):
                continue
            free = 1
            while free < self.concurrency and self._free.acquire(blocking=False):
                free += 1
            batch = self._receive(free)
            for _ in range(free - len(batch)):
                self._free.release()
            for message in batch:
                self._dispatch(pool, message)

    def _receive(self, count: int) -> list[Message]:
        """A lost connection pauses the loop instead of ending it: the broker comes back
        and the worker carries on (unsettled messages are redelivered meanwhile)."""
        try:
            batch = self.consumer.receive(count, timeout=_POLL)
        except ConnectionFailed as error:
            self._outage = min(_MAX_OUTAGE_WAIT, max(_POLL, self._outage * 2))
            log.warning("receive failed, retrying in %.1f s: %s", self._outage, error)
            self.stop.wait(self._outage)
            return []
        self._outage = 0.0
        return batch

    def _dispatch(self, pool: ThreadPoolExecutor, message: Message) -> None:
        key = message.key
        if key is not None:
            with self._lanes_lock:
                lane = self._lanes.get(key)
                if lane is not None:
                    lane.append(message)  # runs after the earlier message of its key
                    self._free.release()  # it waits in a lane, not in a slot
                    return
                self._lanes[key] = collections.deque()
        with self._idle:
            self._running += 1
        pool.submit(self._process, pool, message)

    def _process(self, pool: ThreadPoolExecutor, message: Message) -> None:
        try:
            if self.stop.is_set() and message.settlement is Settlement.PENDING:
                message.nack(requeue=True)  # not started: give it back unprocessed
            else:
                self.handle(message)
        except Exception:
            log.exception("settling message %s failed; it will be redelivered", message.id)
        finally:
            self._next_in_lane(pool, message)

    def _next_in_lane(self, pool: ThreadPoolExecutor, message: Message) -> None:
        follower = None
        if message.key is not None:
            with self._lanes_lock:
                lane = self._lanes[message.key]
                if lane and message.settlement is Settlement.NACKED:
                    # Its retry must not be overtaken by later messages of its key: give
                    # them back too, so the broker redelivers the key in order.
                    given_back = list(lane)
                    lane.clear()
                else:
                    given_back = []
                if lane:
                    follower = lane.popleft()
                else:
                    del self._lanes[message.key]
            for later in given_back:
                later.nack(requeue=True)
        if follower is not None:
            pool.submit(self._process, pool, follower)  # keeps the slot and the count
            return
        self._free.release()
        with self._idle:
            self._running -= 1
            self._idle.notify_all()

    def _drain(self) -> None:
        with self._idle:
            while self._running:
                self._idle.wait()

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
