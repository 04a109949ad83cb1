"""Handler-wrapping middleware: the policy that settles a message after its handler.

Each piece is a function from handler to handler (Watermill's ``router/middleware``),
so the worker composes them and a user can add their own around the innermost call.

* :func:`settle` acks a message whose handler returned without settling it (the worker
  passes its :class:`~messaging.ack_batcher.AckBatcher`, which sends such acks in
  batches).
* :func:`retry_or_dead_letter` turns a handler exception into a delayed redelivery
  (``nack(delay=backoff)``) while attempts remain, and into a dead letter once
  ``Retry.max_attempts`` deliveries have failed. A message that arrives already past
  its attempts (its handler killed the process last time) is dead-lettered without
  running the handler again. A body that cannot be decoded is dead-lettered at once:
  retrying cannot fix it. A dead letter that cannot be written (its destination refuses
  it, or is out of reach) is logged, and the message comes back after the backoff.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable

from messaging.errors import MessagingError, SerializationError
from messaging.message import Message, Settlement
from messaging.retry import Retry

log = logging.getLogger("messaging.worker")

Handler = Callable[[Message], object]


def settle(handler: Handler, ack: Callable[[Message], None] = Message.ack) -> Handler:
    def settled(message: Message) -> object:
        result = handler(message)
        if result is not None and inspect.isawaitable(result):
            # A handler that is async after all (a wrapper the worker's check cannot see
            # through): nothing ran, so it fails like any handler rather than being acked.
            close = getattr(result, "close", None)
            if callable(close):
                close()  # no "never awaited" warning on top of this error
            raise TypeError(f"the handler returned {type(result).__name__}, an awaitable "
                            "nobody awaits: handlers must be plain functions")
        if message.settlement is Settlement.PENDING:
            ack(message)
        return result

    return settled


def retry_or_dead_letter(handler: Handler, policy: Retry, max_delay: float | None,
                         stopping: threading.Event) -> Handler:
    """``max_delay`` is the backend's; without broker-side delay the backoff is waited
    out in the worker thread (it holds a slot: that is the backpressure), interrupted by
    a stop."""

    def letter(message: Message, reason: str, error: BaseException | None) -> None:
        try:
            message._consumer._dead_letter(message, reason, error)
        except MessagingError as failure:
            # The dead-letter destination refused it or is out of reach: the message is
            # still the group's, so it comes back after the backoff and is tried again,
            # rather than stay held here unsettled until the worker stops.
            wait = policy.delay_after(message.attempt)
            log.error("message %s could not be dead-lettered to %r (%s); redelivering it "
                      "after %.1f s: %s", message.id, message._consumer.dead_letter, reason,
                      wait, failure)
            _nack_after(message, wait, max_delay, stopping)
        else:
            # Processing has failed for good: said once, with the last failure's
            # traceback (the retries before it are warnings without one).
            # ``dead_letter`` on the record: for a caller that reports letters itself.
            destination = message._consumer.dead_letter
            log.error("message %s dead-lettered to %r after %d attempt(s) (%s)%s",
                      message.id, destination, message.attempt, reason,
                      f": {error!r}" if error is not None else "", exc_info=error,
                      extra={"dead_letter": destination})

    def guarded(message: Message) -> object:
        if message.attempt > policy.max_attempts:
            letter(message, "max_attempts", None)
            return None
        try:
            return handler(message)
        except Exception as error:
            if message.settlement is not Settlement.PENDING:
                log.exception("handler failed after settling message %s", message.id)
                return None
            if isinstance(error, SerializationError):
                letter(message, "undecodable", error)
            elif policy.exhausted(message.attempt) and message._consumer.dead_letter is not None:
                letter(message, "max_attempts", error)
            else:
                _redeliver_later(message, policy, max_delay, stopping, error)
            return None

    return guarded


def _redeliver_later(message: Message, policy: Retry, max_delay: float | None,
                     stopping: threading.Event, error: Exception) -> None:
    wait = policy.delay_after(message.attempt)
    if policy.exhausted(message.attempt):
        # No dead-letter destination: keep the message rather than lose it.
        log.error("message %s failed %d attempts and has no dead_letter destination; "
                  "redelivering after %.1f s: %r", message.id, message.attempt, wait, error,
                  exc_info=error)
    else:
        log.warning("message %s attempt %d failed, retry in %.1f s: %r",
                    message.id, message.attempt, wait, error)
    _nack_after(message, wait, max_delay, stopping)


def _nack_after(message: Message, wait: float, max_delay: float | None,
                stopping: threading.Event) -> None:
    """Give ``message`` back to be delivered again in ``wait`` seconds."""
    if max_delay is None:
        stopping.wait(wait)
        message.nack(requeue=True)
    else:
        message.nack(requeue=True, delay=min(wait, max_delay) or None)
