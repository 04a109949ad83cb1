"""How many messages to hold ahead of the work, from how long the work takes.

Holding a batch keeps quick work to a broker call per batch; holding too much keeps slow
work from the group's other members (and, where the backend has a visibility timeout,
lets held messages lapse and be delivered twice). Both the worker loop and iteration
over a consumer size what they receive by a :class:`Pace`: no more waiting messages than
the work, at its average speed so far, gets to within :data:`HORIZON`.
"""

from __future__ import annotations

HORIZON = 1.0
"""Seconds of work taken in ahead: no more waiting messages than will start within that
time (and never more than ``prefetch``)."""

_SMOOTHING = 0.2  # weight of the latest time in the running average


class Pace:
    """The running average of one message's work, in seconds (None: none finished)."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: float | None = None

    def record(self, seconds: float) -> None:
        average = self.seconds
        self.seconds = seconds if average is None else average + _SMOOTHING * (
            seconds - average)

    def limit(self, slots: int, most: int, horizon: float | None = None) -> int:
        """How many messages to hold for ``slots`` parallel workers, at most ``most``:
        until the speed is known, a message per slot, as if slow."""
        average = self.seconds
        if average is None:
            return min(most, slots)
        ahead = most if average <= 0 else slots * (horizon or HORIZON) / average
        return min(most, slots + int(ahead))
