"""The reference engine behind ``memory://`` and ``sqlite:///path.db``.

A real driver (like Go CDK's ``mempubsub``) that implements every semantic of the
contract natively; see :mod:`messaging.engine.driver` for its delivery semantics and
errors, and :mod:`messaging.engine.clock` for the injectable clock tests use.
"""

from messaging.engine.clock import Clock, ManualClock, SystemClock

__all__ = ["Clock", "ManualClock", "SystemClock"]
