"""Moving one message to its dead-letter destination, with the reason kept.

The dead letter keeps the original body, key and headers and adds these headers (native
headers like any other, so plain clients read them):

* ``x-dead-letter-reason``: ``max_attempts`` (retries exhausted), ``rejected``
  (``nack(requeue=False)``) or ``undecodable`` (the body did not decode);
* ``x-dead-letter-error``: the handler's exception as ``Type: text`` (truncated);
* ``x-original-destination`` and ``x-original-group``; ``x-attempts``;
* ``x-original-id`` and, where the backend has positions, ``x-original-position``
  (Kafka's ``partition:offset``, a stream entry id): where the original was.

On a backend that limits the number of headers (SQS), the added headers are kept in the
order above as far as the limit allows, and the ones left out are logged: the letter is
never refused for them, since losing the message would be worse than losing a detail.

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
ORIGINAL_ID = "x-original-id"
ORIGINAL_POSITION = "x-original-position"

_MAX_ERROR_TEXT = 1000


def letter_headers(message: Message, group: str, reason: str,
                   error: BaseException | None, max_headers: int | None = None
                   ) -> dict[str, str]:
    """The original headers plus the dead-letter ones, at most ``max_headers`` in all
    (the original headers always stay: they fitted the original message)."""
    added = {REASON: reason, ORIGINAL_DESTINATION: message.destination,
             ORIGINAL_GROUP: group, ATTEMPTS: str(message.attempt)}
    if error is not None:
        added[ERROR] = f"{type(error).__name__}: {error}"[:_MAX_ERROR_TEXT]
    added[ORIGINAL_ID] = message.id
    if message.position is not None:
        added[ORIGINAL_POSITION] = str(message.position)
    headers = dict(message.headers)
    left_out = []
    for name, value in added.items():
        if max_headers is None or name in headers or len(headers) < max_headers:
            headers[name] = value
        else:
            left_out.append(name)
    if left_out:
        log.warning("dead letter of message %s from %r: left out %s (the backend carries "
                    "at most %d headers)", message.id, message.destination,
                    ", ".join(left_out), max_headers)
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
    max_headers = consumer._client.capabilities_for(destination).max_headers
    headers = letter_headers(message, consumer.group, reason, error, max_headers)
    if consumer.capabilities.dead_letter == "native":
        letter = DeadLetter(ack_id, destination, message.body, message.key, headers)
        with native_errors(driver, f"dead-letter to {destination!r}"):
            subscription.send_dead_letters([letter])
        return
    outgoing = OutgoingMessage(body=message.body, key=message.key, headers=headers)
    consumer._client._producer._send_batch(destination, [outgoing], offset=0)
    with native_errors(driver, f"ack dead-lettered on {message.destination!r}"):
        subscription.send_acks([ack_id])
