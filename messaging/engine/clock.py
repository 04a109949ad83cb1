"""The engine's notion of "now", injectable so tests of delay, visibility timeouts, the
dedup window and retention advance time instead of sleeping.

A clock is any object with ``time() -> float`` returning seconds since the epoch (the
``clock`` option of ``memory://`` and ``sqlite://``). Every deadline the engine stores
(delay, visibility, dedup expiry, retention cutoff) is read from it, so a
:class:`ManualClock` moves all of them together. Blocking waits (``receive_batch``'s
``timeout``) still use real time: a test advancing a manual clock calls
``receive_batch(..., timeout=0)`` after ``advance``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What the engine needs from a clock."""

    def time(self) -> float:
        """Seconds since the epoch (UTC), as ``time.time()``."""
        ...


class SystemClock:
    """The wall clock. Wall time rather than a monotonic clock because deadlines are
    stored in a database file that several processes share."""

    def time(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to. Thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (>= 0): time never runs backwards."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back {seconds} seconds")
        with self._lock:
            self._now += seconds

    def __repr__(self) -> str:
        return f"ManualClock({self.time()!r})"
