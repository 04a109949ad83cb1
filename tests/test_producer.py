"""The portable producer's preparation of a ``send_many`` batch, on the reference engine:
values of several kinds and Records in one call, and the size check of each; and what a
``send_many`` that fails part-way reports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import messaging
from messaging.codecs import DefaultCodec
from messaging.driver import OutgoingMessage, SendResult
from messaging.engine.errors import EngineError
from messaging.errors import ErrorCode
from messaging.producer import _PlainValues

OCTETS = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


@pytest.fixture
def client() -> Iterator[messaging.Client]:
    with messaging.connect(f"memory://{uuid.uuid4().hex}?max_message_bytes=200") as client:
        client.admin.create("orders", groups=["default"])
        yield client


def test_a_batch_of_mixed_values_and_records_keeps_each_message_its_own(
        client: messaging.Client) -> None:
    values: list[object] = [b"a", "b", {"c": 1}, b"d",
                            messaging.Record(b"e", key="own", headers={"x": "record"}), "f"]
    client.producer().send_many("orders", values, key="shared", headers={"x": "call"})

    with client.consumer("orders") as consumer:
        got = consumer.receive(10, timeout=1)
    assert [m.value for m in got] == [b"a", "b", {"c": 1}, b"d", b"e", "f"]
    assert [m.key for m in got] == ["shared"] * 4 + ["own", "shared"]
    assert [m.headers for m in got] == [
        {"x": "call", "content-type": OCTETS}, {"x": "call", "content-type": TEXT},
        {"x": "call", "content-type": JSON}, {"x": "call", "content-type": OCTETS},
        {"x": "record", "content-type": OCTETS}, {"x": "call", "content-type": TEXT}]
    # Each message has a headers dict of its own: changing one changes no other.
    got[0].headers["x"] = "changed"
    assert got[3].headers["x"] == "call"


def test_a_value_too_large_for_its_content_type_sends_nothing(
        client: messaging.Client) -> None:
    # 180 bytes fit as bytes with the call's headers, but not as text: the text
    # content-type is the longer header, so the size check must use each value's own.
    fits_as_bytes = b"x" * (200 - len("content-type" + OCTETS) - len("x" + "call"))
    producer = client.producer()
    producer.send_many("orders", [fits_as_bytes], headers={"x": "call"})
    with pytest.raises(messaging.MessageTooLarge):
        producer.send_many("orders", [b"small", fits_as_bytes.decode(), b"small"],
                           headers={"x": "call"})

    assert client.admin.depth("orders", group="default") == 1


def test_a_plain_value_is_prepared_as_the_named_tuple_would_build_it(
        client: messaging.Client) -> None:
    # prepare_all builds the tuple without OutgoingMessage's own constructor: whatever
    # fields that gains, a plain value must still come out equal to one it built.
    plain = _PlainValues(DefaultCodec(), "orders", "k", {"x": "call"},
                         client.capabilities_for("orders"))
    [prepared] = plain.prepare_all([b"v"], lambda record: pytest.fail("not a Record"))
    assert prepared == OutgoingMessage(b"v", "k", {"x": "call", "content-type": OCTETS})
    assert type(prepared) is OutgoingMessage


# -- a send_many that fails part-way -------------------------------------------------------
# The failures are made at the driver boundary (the engine stores what it is given): the
# subject is the producer's account of a call split into several driver batches.

def _failing_on_call(client: messaging.Client, monkeypatch: pytest.MonkeyPatch, call: int,
                     fail: Any) -> None:
    """The driver's ``send_batch`` with its ``call``-th call (from 1) done by ``fail``."""
    driver: Any = client._driver
    real = driver.send_batch
    calls = 0

    def send_batch(destination: str, batch: Sequence[OutgoingMessage]) -> Sequence[SendResult]:
        nonlocal calls
        calls += 1
        return fail(real, destination, batch) if calls == call else real(destination, batch)

    monkeypatch.setattr(driver, "send_batch", send_batch)


def _stored(client: messaging.Client) -> list[bytes]:
    consumer = client.consumer("orders", "default")
    got: list[bytes] = []
    while batch := consumer.receive(max_messages=1000, timeout=0):
        got.extend(m.body for m in batch)
        consumer.ack_many(batch)
    return got


def test_a_send_many_cut_off_accounts_for_every_message(
        client: messaging.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # The second of three driver batches raises as a whole: the first batch was
    # confirmed, the second's outcome is unknown and the third was never sent. Every
    # message of the call is in error.sent or error.failed, so resending the failed ones
    # loses nothing (before, the first batch's ids and the third batch were in neither).
    step = client.capabilities.max_batch
    bodies = [str(n).encode() for n in range(2 * step + step // 2)]

    def cut(real: Any, destination: str, batch: Sequence[OutgoingMessage]) -> Any:
        raise EngineError(ErrorCode.CONNECTION, "connection lost")

    _failing_on_call(client, monkeypatch, 2, cut)
    with pytest.raises(messaging.ConnectionFailed) as raised:
        client.producer().send_many("orders", bodies)
    sent: dict[int, str] = raised.value.sent
    failed: dict[int, messaging.MessagingError] = raised.value.failed
    assert sorted(sent) == list(range(step))
    assert sorted(failed) == list(range(step, len(bodies)))
    assert all(error is raised.value for error in failed.values())
    assert _stored(client) == bodies[:step]
    monkeypatch.undo()
    client.producer().send_many("orders", [bodies[n] for n in sorted(failed)])
    assert _stored(client) == bodies[step:]


def test_a_message_refused_in_a_later_batch_leaves_the_rest_accounted_for(
        client: messaging.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # One message of the second batch is refused on its own: the rest of its batch and
    # the batch before are confirmed, and the batch after it was never sent.
    step = client.capabilities.max_batch
    bodies = [str(n).encode() for n in range(2 * step + 5)]
    refused = step + 3

    def refuse_one(real: Any, destination: str, batch: Sequence[OutgoingMessage]) -> Any:
        at = refused - step
        results = list(real(destination, [*batch[:at], *batch[at + 1:]]))
        results.insert(at, EngineError(ErrorCode.UNKNOWN, "refused"))
        return results

    _failing_on_call(client, monkeypatch, 2, refuse_one)
    with pytest.raises(messaging.MessagingError) as raised:
        client.producer().send_many("orders", bodies)
    sent: dict[int, str] = raised.value.sent
    failed: dict[int, messaging.MessagingError] = raised.value.failed
    assert sorted(sent) == [n for n in range(2 * step) if n != refused]
    assert sorted(failed) == [refused, *range(2 * step, len(bodies))]
    assert _stored(client) == [bodies[n] for n in sorted(sent)]
