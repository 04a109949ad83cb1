"""Moving one message to its dead-letter destination, with the reason kept.

The dead letter keeps the original body, key and headers and adds these headers (native
headers like any other, so plain clients read them):

* ``x-dead-letter-reason``: ``max_attempts`` (retries exhausted), ``rejected``
  (``nack(requeue=False)``) or ``undecodable`` (the body did not decode);
* ``x-dead-letter-error``: the handler's exception as ``Type: text`` (truncated);
* ``x-original-destination`` and ``x-original-group``; ``x-attempts``;
* ``x-original-id`` and, where the backend has positions, ``x-original-position``
  (Kafka's ``partition:offset``, a stream entry id): where the original was.

A letter over the backend's declared number of headers (SQS's worst case: it often still
fits) or its ``max_message_bytes`` keeps as many of the added headers, in the order above,
as the backend takes for it, and the ones left out are logged: the letter is never refused
for them, since losing the message would be worse than losing a detail.

Where the backend moves messages natively (``dead_letter == "native"``) the driver does
it in one step; elsewhere the portable layer publishes the letter and then acks the
original, so a crash between the two can duplicate a dead letter but never lose one.
With no dead-letter destination configured, a rejected message is dropped (like an AMQP
reject without a dead-letter exchange), and that is logged as an error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from messaging import checks
from messaging.driver import DeadLetter, OutgoingMessage, Subscription
from messaging.errors import MessageTooLarge, UnsupportedFeature
from messaging.guard import native_errors, settlement_errors

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


def letter_additions(message: Message, group: str, reason: str,
                     error: BaseException | None) -> list[tuple[str, str]]:
    """The headers a dead letter adds to the original ones, most important first."""
    added = [(REASON, reason), (ORIGINAL_DESTINATION, message.destination),
             (ORIGINAL_GROUP, group), (ATTEMPTS, str(message.attempt))]
    if error is not None:
        added.append((ERROR, f"{type(error).__name__}: {error}"[:_MAX_ERROR_TEXT]))
    added.append((ORIGINAL_ID, message.id))
    if message.position is not None:
        added.append((ORIGINAL_POSITION, str(message.position)))
    return added


def dead_letter(consumer: Consumer, subscription: Subscription, message: Message, *,
                destination: str | None, reason: str, error: BaseException | None) -> None:
    """Move ``message`` to ``destination`` (or drop it, logged, when there is none)."""
    driver = consumer._client._driver
    ack_id = message._ack_id
    if destination is None:
        log.error("dropping message %s from %r (%s%s): the consumer has no dead_letter "
                  "destination", message.id, message.destination, reason,
                  f": {error!r}" if error else "")
        with settlement_errors(driver, "drop on %r", message.destination):
            subscription.send_acks([ack_id])
        return

    # Created on demand (a destination deleted meanwhile), the destination gets the
    # groups that keep letters (see Consumer._keep_letters).
    groups = consumer._letter_groups()

    def move(headers: dict[str, str]) -> None:
        if consumer.capabilities.dead_letter == "native":
            letter = DeadLetter(ack_id, destination, message.body, message.key, headers)

            def send() -> None:
                with native_errors(driver, "dead-letter to %r", destination):
                    subscription.send_dead_letters([letter])

            consumer._client._creating(destination, send, groups)
            return
        outgoing = OutgoingMessage(body=message.body, key=message.key, headers=headers)
        consumer._client._producer._send_batch(destination, [outgoing], offset=0,
                                               groups=groups)
        with settlement_errors(driver, "ack dead-lettered on %r", message.destination):
            subscription.send_acks([ack_id])

    original = dict(message.headers)
    added = letter_additions(message, consumer.group, reason, error)
    limits = consumer._client.capabilities_for(destination)
    # A letter is its original plus these headers, so it can be over the backend's
    # declared header count (SQS's worst case: it often still fits) or size when its
    # original was not: keep as many additions, in the order above, as the backend takes
    # for it. Each refusal comes before anything is sent. Without additions the letter
    # is its original, which the broker has carried once: the broker alone judges it.
    for keep in range(len(added), -1, -1):
        headers = {**original, **dict(added[:keep])}
        try:
            if keep:
                checks.check_size(destination, message.body, headers, limits)
            move(headers)
        except (UnsupportedFeature, MessageTooLarge):
            if keep == 0:
                raise
            continue
        if keep < len(added):
            log.warning("dead letter of message %s from %r: left out %s (over the "
                        "backend's limit on headers or size)", message.id,
                        message.destination, ", ".join(name for name, _ in added[keep:]))
        return
