"""The requests of one driver call, side by side.

An SQS request carries at most 10 messages, so a ``send_many`` of 100 is 10
``SendMessageBatch`` requests and an ``ack_many`` of 100 is 10 ``DeleteMessageBatch``
requests. One after another, each waits a full round trip (tens of milliseconds to AWS);
side by side, the call takes about one. boto3 clients are thread-safe, and the driver's
HTTP pool holds more connections than this runs at once.

The calling thread takes part: it runs requests too, so a call never waits for a pool
thread that other calls keep busy, and a call of one request runs no thread at all.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

DEFAULT_LIMIT = 8
"""Requests of one call in flight at once, unless the ``request_concurrency`` option
says otherwise."""


class Requests:
    """Runs the requests of a call, at most ``limit`` of them at a time."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pid = os.getpid()  # a forked child has the pool but not its threads
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return self._limit

    def run(self, calls: Sequence[Callable[[], T]], *, in_order: bool = False
            ) -> list[T | Exception]:
        """Each call's result, or the exception it raised, in the order of ``calls``.

        ``in_order``: one after another, and none after one that failed (its exception
        is then the outcome of the rest too): a FIFO queue must not take a later batch
        of a send before an earlier one.
        """
        if in_order:
            return _one_by_one(calls)
        outcomes: list[T | Exception | None] = [None] * len(calls)
        pending = iter(range(len(calls)))
        taking = threading.Lock()

        def work() -> None:
            while True:
                with taking:
                    index = next(pending, None)
                if index is None:
                    return
                outcomes[index] = _outcome(calls[index])

        helpers = min(self._limit, len(calls)) - 1
        asked = [self._executor().submit(work) for _ in range(helpers)] if helpers else []
        work()
        for helper in asked:
            # A helper that has not started has nothing left to do: this thread took the
            # rest. Not waiting for it also keeps a pool that cannot run (inherited by a
            # forked child without its threads) from hanging the call.
            if not helper.cancel():
                helper.result()  # work() itself never raises
        return outcomes  # type: ignore[return-value]  # every slot is filled by now

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():  # new, or forked
                self._pid = os.getpid()
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._limit - 1, thread_name_prefix="messaging-sqs")
            return self._pool


def _one_by_one(calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
    outcomes: list[T | Exception] = []
    for call in calls:
        outcome = _outcome(call)
        outcomes.append(outcome)
        if isinstance(outcome, Exception):
            return outcomes + [outcome] * (len(calls) - len(outcomes))
    return outcomes


def _outcome(call: Callable[[], T]) -> T | Exception:
    try:
        return call()
    except Exception as error:
        return error
