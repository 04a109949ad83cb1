"""``Retry``: how many deliveries a message gets and how long to wait between them.

The attempt number comes from the message (``Message.attempt``, counted by the broker or
carried in headers by the adapter), not from a counter in this process, so a retry
policy holds across worker restarts and across processes.
"""

from __future__ import annotations

import dataclasses
import math
import random

from messaging.checks import check_seconds
from messaging.errors import ConfigurationError


@dataclasses.dataclass(frozen=True)
class Retry:
    """Retry a failed message up to ``max_attempts`` deliveries in all.

    The wait after failed attempt ``n`` is ``backoff * multiplier ** (n - 1)``, capped at
    ``max_backoff``, with up to ``jitter`` (a fraction) added at random so that a burst of
    failures does not come back as a burst.
    """

    max_attempts: int = 5
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("backoff", "max_backoff"):
            check_seconds(name, getattr(self, name), zero=True)
        for name, least in (("multiplier", 1), ("jitter", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < least:
                raise ConfigurationError(
                    f"{name} must be a finite number >= {least}, got {value!r}")

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait before the delivery that follows failed ``attempt``."""
        try:
            grown = self.backoff * self.multiplier ** max(0, attempt - 1)
        except OverflowError:  # past about attempt 1000 with a doubling: the cap holds
            grown = math.inf if self.backoff else 0.0
        base = min(self.max_backoff, grown)
        return base * (1 + self.jitter * random.random())

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
