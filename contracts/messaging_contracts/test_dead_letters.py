"""Contract 8, dead letters: after ``max_attempts`` deliveries or ``nack(requeue=False)``,
the message appears on the dead-letter destination with body, key and headers intact plus
the reason (headers ``x-dead-letter-reason``, ``x-original-destination``,
``x-original-group``, ``x-attempts`` and, for a handler failure, ``x-dead-letter-error``;
where headers are unlimited also ``x-original-id`` and ``x-original-position``).

Both ``capabilities.dead_letter`` modes (``native`` and ``emulated``) must show the same.
A body that does not decode is dead-lettered at once (reason ``undecodable``); a message
rejected where no dead-letter destination is configured is dropped, not redelivered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import messaging
from messaging_contracts.helpers import (
    MakeConsumer,
    MakeDestination,
    MakeGroup,
    Timing,
    assert_quiet,
    receive_one,
    wait_for,
)

pytestmark = pytest.mark.messaging_contract("dead-letters")

REASON = "x-dead-letter-reason"
ERROR = "x-dead-letter-error"
ORIGINAL_DESTINATION = "x-original-destination"
ORIGINAL_GROUP = "x-original-group"
ATTEMPTS = "x-attempts"
ORIGINAL_ID = "x-original-id"
ORIGINAL_POSITION = "x-original-position"

BODY = b"\x00order 7\xff"
HEADERS = {"trace-id": "abc-123", "source": "web \u2713"}


def _check_letter(letter: messaging.Message, *, destination: str, group: str, reason: str,
                  attempts: int, body: bytes = BODY, key: str | None = "user-42",
                  headers: dict[str, str] = HEADERS) -> None:
    assert letter.body == body
    assert letter.key == key
    for name, value in headers.items():
        assert letter.headers.get(name) == value, f"header {name!r} lost: {letter.headers}"
    assert letter.headers.get(REASON) == reason, letter.headers
    assert letter.headers.get(ORIGINAL_DESTINATION) == destination, letter.headers
    assert letter.headers.get(ORIGINAL_GROUP) == group, letter.headers
    assert letter.headers.get(ATTEMPTS) == str(attempts), letter.headers


def _run_until(consumer: messaging.Consumer, handler: Callable[[messaging.Message], object],
               done: Callable[[], bool], timeout: float, *, retry: messaging.Retry,
               dead_letter: str) -> bool:
    """Run ``consumer``'s worker loop in a thread until ``done()`` or ``timeout``."""
    stop = threading.Event()
    worker = threading.Thread(
        target=consumer.run, name="contract-dead-letter-worker", daemon=True,
        kwargs={"handler": handler, "retry": retry, "dead_letter": dead_letter,
                "stop_event": stop},
    )
    worker.start()
    try:
        return wait_for(done, timeout)
    finally:
        stop.set()
        worker.join(timeout=timeout)
        assert not worker.is_alive(), "run() did not return on stop"


def test_rejected_message_is_dead_lettered_intact(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_make_destination: MakeDestination, messaging_group: MakeGroup,
    messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group, letters_group = messaging_destination, messaging_group(), \
        messaging_group()
    dead = messaging_make_destination(suffix="dlq", groups=[letters_group])
    consumer = messaging_consumer(destination, group, dead_letter=dead)
    messaging_client.producer().send(destination, BODY, key="user-42", headers=HEADERS)

    message = receive_one(consumer, messaging_timing.deliver)
    message.nack(requeue=False)

    letters = messaging_consumer(dead, letters_group)
    letter = receive_one(letters, messaging_timing.deliver, "the dead letter")
    _check_letter(letter, destination=destination, group=group, reason="rejected", attempts=1,
                  headers={**HEADERS, "content-type": message.headers["content-type"]})
    if messaging_client.capabilities_for(dead).max_headers is None:
        # Where headers are unlimited the letter also says where the original was (on a
        # backend with a header limit these come last and may be left out).
        assert letter.headers.get(ORIGINAL_ID) == message.id, letter.headers
        if message.position is not None:
            assert letter.headers.get(ORIGINAL_POSITION) == message.position, letter.headers
    letter.ack()
    assert_quiet(consumer, messaging_timing.quiet, "after it was dead-lettered")
    assert_quiet(letters, messaging_timing.quiet / 2, "beyond the one dead letter")
    assert messaging_client.admin.depth(destination, group) == 0
    assert messaging_client.admin.depth(dead, letters_group) == 0


def test_letters_are_kept_for_the_consuming_group_without_declaring_one(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_make_destination: MakeDestination, messaging_group: MakeGroup,
    messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    # The dead-letter destination exists, but no group reads it yet. A destination keeps
    # a message only for the groups it had (without replay), or a group made later
    # starts past it (contract 11), so the consumer declares its own group there: the
    # letter waits for that group, found with no seek on every backend.
    destination, group = messaging_destination, messaging_group()
    dead = messaging_make_destination(suffix="dlq")
    consumer = messaging_consumer(destination, group, dead_letter=dead)
    messaging_client.producer().send(destination, BODY, key="user-42", headers=HEADERS)
    receive_one(consumer, messaging_timing.deliver).nack(requeue=False)

    letters = messaging_consumer(dead, group)
    letter = receive_one(letters, messaging_timing.deliver, "the dead letter")
    _check_letter(letter, destination=destination, group=group, reason="rejected", attempts=1)
    letter.ack()


def test_exhausted_retries_are_dead_lettered(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_make_destination: MakeDestination, messaging_group: MakeGroup,
    messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group, letters_group = messaging_destination, messaging_group(), \
        messaging_group()
    dead = messaging_make_destination(suffix="dlq", groups=[letters_group])
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send(destination, BODY, key="user-42", headers=HEADERS)
    attempts: list[int] = []

    def failing(message: messaging.Message) -> None:
        attempts.append(message.attempt)
        raise ValueError("payment service down")

    finished = _run_until(
        consumer, failing,
        lambda: messaging_client.admin.depth(destination, group) == 0,
        messaging_timing.deliver * 2, retry=messaging.Retry(max_attempts=3, backoff=0.0,
                                                            jitter=0.0),
        dead_letter=dead,
    )

    assert finished, f"still not dead-lettered after attempts {attempts}"
    assert attempts == [1, 2, 3]
    letter = receive_one(messaging_consumer(dead, letters_group), messaging_timing.deliver,
                         "the dead letter")
    _check_letter(letter, destination=destination, group=group, reason="max_attempts",
                  attempts=3)
    assert letter.headers.get(ERROR) == "ValueError: payment service down"
    letter.ack()


def test_undecodable_body_is_dead_lettered_at_once(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_make_destination: MakeDestination, messaging_group: MakeGroup,
    messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group, letters_group = messaging_destination, messaging_group(), \
        messaging_group()
    dead = messaging_make_destination(suffix="dlq", groups=[letters_group])
    consumer = messaging_consumer(destination, group)
    broken = b'{"id": 7,'  # claims to be JSON, is not
    headers = {"content-type": "application/json"}
    messaging_client.producer().send(destination, broken, key="user-42", headers=headers)
    calls: list[int] = []

    def reads_value(message: messaging.Message) -> None:
        calls.append(message.attempt)
        _ = message.value

    finished = _run_until(
        consumer, reads_value, lambda: messaging_client.admin.depth(destination, group) == 0,
        messaging_timing.deliver, retry=messaging.Retry(max_attempts=5, backoff=0.0),
        dead_letter=dead,
    )

    assert finished, f"still not dead-lettered after attempts {calls}"
    assert calls == [1], "an undecodable body was retried"
    letter = receive_one(messaging_consumer(dead, letters_group), messaging_timing.deliver,
                         "the dead letter")
    _check_letter(letter, destination=destination, group=group, reason="undecodable",
                  attempts=1, body=broken, headers=headers)
    assert letter.headers.get(ERROR, "").startswith("SerializationError"), letter.headers
    letter.ack()


def test_rejected_without_a_dead_letter_destination_is_dropped(
    *, messaging_client: messaging.Client, messaging_destination: str,
    messaging_group: MakeGroup, messaging_consumer: MakeConsumer, messaging_timing: Timing,
) -> None:
    destination, group = messaging_destination, messaging_group()
    consumer = messaging_consumer(destination, group)
    messaging_client.producer().send(destination, b"poison")
    message = receive_one(consumer, messaging_timing.deliver)

    message.nack(requeue=False)

    assert messaging_client.admin.depth(destination, group) == 0
    assert_quiet(consumer, messaging_timing.quiet, "after it was rejected")
