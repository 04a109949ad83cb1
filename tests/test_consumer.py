"""Portable settlement bookkeeping and bad input, on the reference engine."""

from __future__ import annotations

import copy
import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from taken_back import take_back_on_receive

import messaging
from messaging.ack_batcher import AckBatcher
from messaging.checks import message_size


@pytest.fixture
def client() -> Iterator[messaging.Client]:
    with messaging.connect(f"memory://{uuid.uuid4().hex}") as client:
        yield client


def test_double_ack_is_a_no_op_and_conflicting_settlement_raises(client: messaging.Client) -> None:
    client.admin.create("orders", groups=["default", "g"])
    client.producer().send("orders", b"x")
    with client.consumer("orders") as consumer:
        (message,) = consumer.receive(1, timeout=1)
        message.ack()
        message.ack()
        with pytest.raises(messaging.AlreadySettled, match="is already acked; cannot nack it"):
            message.nack()
        with pytest.raises(messaging.AlreadySettled, match="cannot dead-letter it"):
            message.nack(requeue=False)
        assert client.admin.depth("orders") == 0


def test_close_gives_back_unsettled_messages_with_attempt_plus_one(client: messaging.Client
                                                                  ) -> None:
    client.admin.create("orders", groups=["default", "g"])
    client.producer().send_many("orders", [b"a", b"b"])
    first = client.consumer("orders", group="g")
    got = first.receive(2, timeout=1)
    assert [m.attempt for m in got] == [1, 1]
    got[0].ack()
    first.close()
    with client.consumer("orders", group="g") as second:
        again = second.receive(10, timeout=1)
    assert [(m.body, m.attempt) for m in again] == [(b"b", 2)]


def test_settling_after_close_raises(client: messaging.Client) -> None:
    client.admin.create("orders", groups=["default", "g"])
    client.producer().send("orders", b"x")
    consumer = client.consumer("orders")
    (message,) = consumer.receive(1, timeout=1)
    consumer.close()
    with pytest.raises(messaging.AlreadySettled):
        message.ack()


def test_ack_many_settles_a_batch(client: messaging.Client) -> None:
    client.admin.create("orders", groups=["default", "g"])
    client.producer().send_many("orders", [str(i) for i in range(50)])
    with client.consumer("orders") as consumer:
        batch = consumer.receive(50, timeout=1)
        consumer.ack_many(batch)
        assert client.admin.depth("orders") == 0
        assert [m.value for m in batch] == [str(i) for i in range(50)]


def test_the_driver_can_ask_which_acks_are_not_sent_yet(client: messaging.Client) -> None:
    """``SubscriptionOptions.acked_unsent``: a Kafka revocation commits those acks."""
    client.admin.create("orders", groups=["g"])
    client.producer().send_many("orders", [b"a", b"b", b"c"])
    with client.consumer("orders", group="g") as consumer:
        a, b, c = consumer.receive(3, timeout=1)
        unsent = consumer._options.acked_unsent  # what the driver was given
        assert unsent() == []
        waiting = AckBatcher(consumer)  # not started: its batch has not gone out
        waiting.ack(a)
        waiting.ack(c)
        assert unsent() == [a.delivery.ack_id, c.delivery.ack_id]
        consumer._settle_acks([a, c])  # the batch goes out
        b.ack()
        assert unsent() == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.producer().send("", b"x"), messaging.ConfigurationError),
        (lambda c: c.producer().send("has space", b"x"), messaging.ConfigurationError),
        (lambda c: c.producer().send("q", object()), messaging.SerializationError),
        (lambda c: c.producer().send("q", b"x" * (c.capabilities.max_message_bytes + 1)),
         messaging.MessageTooLarge),
        (lambda c: c.producer().send("q", b"x", headers={"a": 1}), messaging.ConfigurationError),
        (lambda c: c.producer().send("q", b"x", priority=10_000), messaging.UnsupportedFeature),
        (lambda c: c.consumer("q", prefetch=0), messaging.ConfigurationError),
    ],
)
def test_bad_input_raises_typed_errors_and_sends_nothing(client: messaging.Client, call: object,
                                                         error: type[Exception]) -> None:
    client.admin.create("q", groups=["default"])
    with pytest.raises(error):
        call(client)  # type: ignore[operator]
    assert client.admin.depth("q", "default") == 0


def test_send_many_checks_every_message_before_sending_any(client: messaging.Client) -> None:
    client.admin.create("q", groups=["default"])
    with pytest.raises(messaging.SerializationError):
        client.producer().send_many("q", [b"ok", b"fine", object()])
    assert client.admin.depth("q", "default") == 0


@pytest.mark.parametrize(
    ("url", "options", "error"),
    [
        ("nosuch://x", {}, messaging.ConfigurationError),
        ("memory", {}, messaging.ConfigurationError),
        ("memory://", {"no_such_option": 1}, messaging.ConfigurationError),
        ("memory://", {"connect_timeout": "soon"}, messaging.ConfigurationError),
    ],
)
def test_bad_connect_input(url: str, options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        messaging.connect(url, **options)


def test_repr_and_errors_never_show_the_password() -> None:
    with pytest.raises(messaging.ConfigurationError) as caught:
        messaging.connect("nosuch://user:hunter2@host:1/")
    assert "hunter2" not in str(caught.value)
    with messaging.connect("memory://") as client:
        assert "memory://" in repr(client)
        # All four show their backend, through the URL's redacted form.
        assert repr(client.producer()) == "<Producer memory://>"
        assert repr(client.admin) == "<Admin memory://>"


def _reject_and_read_the_letter(client: messaging.Client) -> messaging.Message:
    """Reject the one message on ``orders`` (dead letters to ``dlq``); its letter, acked."""
    with client.consumer("orders", dead_letter="dlq") as consumer:
        (message,) = consumer.receive(1, timeout=1)
        message.nack(requeue=False)
    with client.consumer("dlq", group="ops") as ops:
        (letter,) = ops.receive(1, timeout=1)
        letter.ack()
    return letter


def test_dead_letter_on_reject_keeps_body_headers_and_reason(client: messaging.Client) -> None:
    client.admin.create("dlq", groups=["ops"])
    client.admin.create("orders", groups=["default", "g"])
    client.producer().send("orders", {"id": 1}, key="k", headers={"trace": "t1"})
    letter = _reject_and_read_the_letter(client)
    assert letter.value == {"id": 1}
    assert letter.key == "k"
    assert letter.headers["trace"] == "t1"
    assert letter.headers["x-dead-letter-reason"] == "rejected"
    assert letter.headers["x-original-destination"] == "orders"


def test_a_dead_letter_keeps_as_many_of_its_headers_as_the_backend_takes(
        client: messaging.Client, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A backend that declares at most 4 headers but takes 6 for this letter: the
    originals stay, then the letter's own headers in order of importance."""
    client.admin.create("orders", groups=["default"])
    client.admin.create("dlq", groups=["ops"])
    client.producer().send("orders", b"x", headers={"a": "1", "b": "2"})
    limited = client.capabilities_for("dlq").replace(max_headers=4)
    monkeypatch.setattr(client, "capabilities_for", lambda destination: limited)
    # The engine moves letters natively: its subscription's send_dead_letters refuses.
    from messaging.engine.driver import EngineSubscription

    move = EngineSubscription.send_dead_letters

    def takes_six(self: EngineSubscription, letters: Any) -> None:
        if any(len(letter.headers) > 6 for letter in letters):
            raise messaging.UnsupportedFeature("more than 6 headers")
        move(self, letters)

    monkeypatch.setattr(EngineSubscription, "send_dead_letters", takes_six)
    letter = _reject_and_read_the_letter(client)
    assert letter.headers == {"a": "1", "b": "2", "content-type": "application/octet-stream",
                              "x-dead-letter-reason": "rejected",
                              "x-original-destination": "orders",
                              "x-original-group": "default"}
    assert "left out x-attempts, x-original-id, x-original-position" in caplog.text
    assert client.admin.depth("orders", "default") == 0


def test_a_dead_letter_keeps_as_many_of_its_headers_as_its_size_allows(
        client: messaging.Client, caplog: pytest.LogCaptureFixture) -> None:
    """A message 100 bytes under the limit: its letter cannot take every added header
    (124 bytes for this one), so it keeps the most important ones and
    stays within ``max_message_bytes``, as any message sent does."""
    client.admin.create("orders", groups=["default"])
    client.admin.create("dlq", groups=["ops"])
    limit = client.capabilities_for("dlq").max_message_bytes
    headers = {"content-type": "application/octet-stream"}
    body = b"x" * (limit - message_size(b"", headers) - 100)
    client.producer().send("orders", body, headers=headers)
    letter = _reject_and_read_the_letter(client)
    assert letter.body == body
    assert message_size(letter.body, letter.headers) <= limit
    assert letter.headers == {**headers, "x-dead-letter-reason": "rejected",
                              "x-original-destination": "orders",
                              "x-original-group": "default", "x-attempts": "1"}
    assert "left out x-original-id, x-original-position" in caplog.text
    assert client.admin.depth("orders", "default") == 0


@pytest.mark.parametrize("copy_it", [pickle.dumps, copy.copy, copy.deepcopy],
                         ids=["pickle", "copy", "deepcopy"])
def test_a_message_is_not_copied_nor_sent_to_another_process(
        client: messaging.Client, copy_it: Any) -> None:
    """A process pool pickles its arguments: that failed on a socket or lock of the
    consumer's connection, and copy.copy made a second settlement state, so a message
    could be acked twice unnoticed. Both are refused with an explanation."""
    client.admin.create("orders", groups=["default"])
    client.producer().send("orders", b"x")
    with client.consumer("orders") as consumer:
        (message,) = consumer.receive(1, timeout=1)
        with pytest.raises(TypeError, match="belongs to the consumer that received it"):
            copy_it(message)
        message.ack()


def test_iteration_yields_every_message_until_the_consumer_closes(client: messaging.Client
                                                                   ) -> None:
    client.admin.create("orders", groups=["default"])
    client.producer().send_many("orders", [f"m{i}".encode() for i in range(5)])
    consumer = client.consumer("orders", prefetch=2)
    seen = []
    for message in consumer:
        seen.append(message.body)
        message.ack()
        if len(seen) == 5:
            consumer.close()
    assert seen == [f"m{i}".encode() for i in range(5)]
    assert client.admin.depth("orders") == 0


def test_iteration_skips_a_message_the_backend_took_back(client: messaging.Client,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    client.admin.create("orders", groups=["default"])
    client.producer().send_many("orders", [b"a", b"b", b"c"])
    consumer = client.consumer("orders")
    take_back_on_receive(monkeypatch, consumer, {b"b"})
    seen = []
    for message in consumer:
        seen.append(message.body)
        message.ack()
        if len(seen) == 2:
            break
    consumer.close()  # b was not acked here: the group has it again
    assert seen == [b"a", b"c"]
    with client.consumer("orders") as again:
        assert [(m.body, m.attempt) for m in again.receive(10, timeout=1)] == [(b"b", 2)]


def test_iteration_takes_in_batches_for_quick_work_and_few_for_slow(
        client: messaging.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    client.admin.create("orders", groups=["default"])
    client.producer().send_many("orders", list(range(30)))
    consumer = client.consumer("orders", prefetch=10)
    asked: list[int] = []
    receive = consumer.receive

    def counting(max_messages: int = 10, timeout: float = 1.0) -> list[messaging.Message]:
        asked.append(max_messages)
        return receive(max_messages, timeout)

    monkeypatch.setattr(consumer, "receive", counting)
    for n, message in enumerate(consumer, 1):
        message.ack()
        if n > 15:
            time.sleep(0.3)  # now slower than the horizon (a second) allows 10 of
        if n == 27:
            break
    consumer.close()
    assert asked[0] == 1, "until the work's speed is known: one message, as if slow"
    assert asked[1:3] == [10, 10], "quick work: prefetch at a time"
    assert len(asked) > 3, asked
    assert max(asked[3:]) <= 6, asked  # the average is on its way to 0.3 s: 1 + 1/0.3


def test_slow_iteration_by_two_members_does_not_outlive_the_visibility_timeout(
        client: messaging.Client) -> None:
    """Each member holds what its loop gets to within the horizon: before that, the first
    member took all 12 at once and the last ones lapsed and were delivered twice."""
    client.admin.create("orders", groups=["default"])
    client.producer().send_many("orders", list(range(12)))
    handled: list[object] = []
    lock = threading.Lock()
    consumers = [client.consumer("orders", visibility_timeout=2.0) for _ in range(2)]
    # Once all are handled, both loops are ended a little later: a lapsed message would
    # be back by then, and be handled twice.
    stop = threading.Timer(0.5, lambda: [c.close() for c in consumers])

    def member(consumer: messaging.Consumer) -> None:
        for message in consumer:
            with lock:
                handled.append(message.value)
            time.sleep(0.25)
            message.ack()
            with lock:
                if len(set(handled)) == 12 and stop.ident is None:
                    stop.start()

    members = [threading.Thread(target=member, args=(c,)) for c in consumers]
    for thread in members:
        thread.start()
    for thread in members:
        thread.join(20)
    assert sorted(handled) == list(range(12))  # type: ignore[type-var]


@pytest.mark.parametrize("changes", [
    {"backoff": float("nan")}, {"backoff": float("inf")}, {"backoff": -1.0},
    {"backoff": "1"}, {"max_backoff": float("nan")}, {"multiplier": float("nan")},
    {"multiplier": 0.5}, {"jitter": float("inf")}, {"jitter": -0.1}, {"max_attempts": 0},
], ids=str)
def test_retry_refuses_what_is_not_a_finite_number(changes: dict[str, Any]) -> None:
    # NaN compares false with every bound: a "< 0" check alone lets it through, and
    # the worker would then schedule a retry at NaN seconds.
    with pytest.raises(messaging.ConfigurationError, match=next(iter(changes))):
        messaging.Retry(**changes)


def test_retry_waits_stay_capped_however_many_attempts() -> None:
    # multiplier ** attempt overflows a float past about attempt 1000 with a doubling
    assert messaging.Retry(max_backoff=2.0, jitter=0).delay_after(5000) == 2.0
    assert messaging.Retry(backoff=0, jitter=0).delay_after(5000) == 0.0


def test_retry_accepts_zero_waits() -> None:
    assert messaging.Retry(backoff=0, max_backoff=0, jitter=0).delay_after(3) == 0.0
