"""Moving one message to its dead-letter destination, with the reason kept.

The dead letter keeps the original body, key and headers and adds these headers (native
headers like any other, so plain clients read them):

* ``x-dead-letter-reason``: ``max_attempts`` (retries exhausted), ``rejected``
  (``nack(requeue=False)``) or ``undecodable`` (the body did not decode);
* ``x-dead-letter-error``: the handler's exception as ``Type: text`` (truncated);
* ``x-original-destination`` and ``x-original-group``; ``x-attempts``.

Where the backend moves messages natively (``dead_letter == "native"``) the driver does
it in one step; elsewhere the portable layer publishes the letter and then acks the
original, so a crash between the two can duplicate a dead letter but never lose one.
With no dead-letter destination configured, a rejected message is dropped (like an AMQP
reject without a dead-letter exchange), and that is logged as an error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from messaging.driver import DeadLetter, OutgoingMessage, Subscription
from messaging.guard import native_errors

if TYPE_CHECKING:
    from messaging.consumer import Consumer
    from messaging.message import Message

log = logging.getLogger("messaging.dead_letter")

REASON = "x-dead-letter-reason"
ERROR = "x-dead-letter-error"
ORIGINAL_DESTINATION = "x-original-destination"
ORIGINAL_GROUP = "x-original-group"
ATTEMPTS = "x-attempts"

_MAX_ERROR_TEXT = 1000


def letter_headers(message: Message, group: str, reason: str,
                   error: BaseException | None) -> dict[str, str]:
    headers = dict(message.headers)
    headers[REASON] = reason
    headers[ORIGINAL_DESTINATION] = message.destination
    headers[ORIGINAL_GROUP] = group
    headers[ATTEMPTS] = str(message.attempt)
    if error is not None:
        headers[ERROR] = f"{type(error).__name__}: {error}"[:_MAX_ERROR_TEXT]
    return headers


def dead_letter(consumer: Consumer, subscription: Subscription, message: Message, *,
                destination: str | None, reason: str, error: BaseException | None) -> None:
    """Move ``message`` to ``destination`` (or drop it, logged, when there is none)."""
    driver = consumer._client._driver
    ack_id = message.delivery.ack_id
    if destination is None:
        log.error("dropping message %s from %r (%s%s): the consumer has no dead_letter "
                  "destination", message.id, message.destination, reason,
                  f": {error!r}" if error else "")
        with native_errors(driver, f"drop on {message.destination!r}"):
            subscription.send_acks([ack_id])
        return
    headers = letter_headers(message, consumer.group, reason, error)
    if consumer.capabilities.dead_letter == "native":
        letter = DeadLetter(ack_id, destination, message.body, message.key, headers)
        with native_errors(driver, f"dead-letter to {destination!r}"):
            subscription.send_dead_letters([letter])
        return
    outgoing = OutgoingMessage(body=message.body, key=message.key, headers=headers)
    consumer._client._producer._send_batch(destination, [outgoing], offset=0)
    with native_errors(driver, f"ack dead-lettered on {message.destination!r}"):
        subscription.send_acks([ack_id])
