"""What a backend guarantees, declared once per driver as data.

The same object drives the runtime checks (``UnsupportedFeature`` at the call,
``MessageTooLarge`` before sending) and the contract suite, which asserts the behaviour
where a flag claims it and ``UnsupportedFeature`` where it does not. A docstring can
therefore never disagree with what the code enforces.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Ordering = Literal["none", "per_key"]
DeadLetterMode = Literal["native", "emulated"]


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """The guarantees of one backend (and, where they differ, of one destination).

    ``emulated`` names the features the adapter builds on top of the broker rather than
    getting from it (for example ``"delay"`` on Kafka); such features work, at the cost
    the adapter's mapping document states.
    """

    ordering: Ordering
    """``"per_key"``: messages with one key reach a group in send order."""
    fan_out: bool
    """Every group receives every message sent after it exists."""
    replay: bool
    """A group can ``seek`` to the beginning, a time or a position."""
    max_delay: float | None
    """Longest ``delay`` on ``send`` / ``nack`` in seconds; None when delay is unsupported."""
    priority: int
    """Number of priority levels (priorities 0..priority-1); 0 when unsupported."""
    dead_letter: DeadLetterMode
    """``"native"``: the broker moves the message; ``"emulated"``: publish, then ack."""
    dedup: bool
    """``send(dedup_id=...)`` drops a repeat of the same id inside ``dedup_window``."""
    max_message_bytes: int
    """Largest body plus headers (UTF-8 bytes of names and values) the backend accepts."""
    max_headers: int | None = None
    """Most headers one message may carry; None when unlimited."""
    visibility_timeout: bool = True
    """An unacked message becomes deliverable again after ``visibility_timeout``."""
    extend: bool = True
    """``Message.extend(seconds)`` pushes the visibility deadline back."""
    durable: bool = True
    """A send that returned survives a broker restart."""
    dedup_window: float | None = None
    """Seconds a ``dedup_id`` is remembered; None when ``dedup`` is False."""
    max_batch: int = 1000
    """Most messages one driver batch may carry (the portable layer splits larger ones)."""
    emulated: frozenset[str] = frozenset()
    """Features provided by the adapter on top of the broker, by name."""

    def replace(self, **changes: object) -> Capabilities:
        """A copy with some fields changed (per-destination differences)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
