"""Native dead letters: the delivery leaves its group and the letter enters the
dead-letter destination in one transaction."""

from __future__ import annotations

import pytest
from engine_support import bodies, send, subscribe, take

from messaging.driver import DeadLetter
from messaging.engine import operations
from messaging.engine.clock import ManualClock
from messaging.engine.driver import EngineDriver
from messaging.engine.errors import EngineError
from messaging.errors import ErrorCode

LETTER_HEADERS = {"trace": "abc", "x-dead-letter-reason": "rejected"}


def _letter(ack_id: object, destination: str = "orders.dlq") -> DeadLetter:
    return DeadLetter(ack_id=ack_id, destination=destination, body=b"\x00poison\xff",
                      key="user-42", headers=LETTER_HEADERS)


def test_a_dead_letter_moves_to_its_destination_intact(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    engine.create("orders.dlq", 1, ["letters"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"\x00poison\xff", key="user-42")
    [delivery] = take(subscription)

    subscription.send_dead_letters([_letter(delivery.ack_id)])

    assert engine.depth("orders", "g") == 0
    assert take(subscription) == []
    [letter] = take(subscribe(engine, "orders.dlq", "letters"))
    assert (letter.body, letter.key, letter.headers) == (
        b"\x00poison\xff", "user-42", LETTER_HEADERS)
    assert letter.destination == "orders.dlq"


def test_a_missing_dead_letter_destination_is_not_found_and_takes_nothing(
        engine: EngineDriver) -> None:
    # Creating it is the portable layer's choice (auto_create), as for any send.
    engine.create("orders", 1, ["g"], {})
    subscription = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"x")
    [delivery] = take(subscription)

    with pytest.raises(EngineError) as caught:
        subscription.send_dead_letters([_letter(delivery.ack_id, "missing.dlq")])

    assert caught.value.code is ErrorCode.NOT_FOUND
    assert "missing.dlq" not in engine.destinations()
    assert engine.depth("orders", "g") == 1, "the delivery must stay where it was"
    subscription.send_acks([delivery.ack_id])  # still this holder's lease
    assert engine.depth("orders", "g") == 0


def test_a_stale_lease_is_not_dead_lettered(engine: EngineDriver, clock: ManualClock) -> None:
    engine.create("orders", 1, ["g"], {})
    engine.create("orders.dlq", 1, ["letters"], {})
    slow = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    other = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"x")
    [stale] = take(slow)
    clock.advance(10.0)
    assert len(take(other)) == 1

    slow.send_dead_letters([_letter(stale.ack_id)])

    assert engine.depth("orders.dlq", "letters") == 0
    assert engine.depth("orders", "g") == 1


def test_a_failed_dead_letter_leaves_the_delivery_in_place(
    engine: EngineDriver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine.create("orders", 1, ["g"], {})
    engine.create("orders.dlq", 1, ["letters"], {})
    subscription = subscribe(engine, "orders", "g", visibility_timeout=10.0)
    send(engine, "orders", b"x")
    [delivery] = take(subscription)

    def broken_send(*args: object, **kwargs: object) -> list[str]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(operations, "send", broken_send)
    with pytest.raises(RuntimeError):
        subscription.send_dead_letters([_letter(delivery.ack_id)])
    monkeypatch.undo()

    assert engine.depth("orders", "g") == 1, "the delivery went, the letter did not"
    assert engine.depth("orders.dlq", "letters") == 0
    subscription.send_acks([delivery.ack_id])  # still this holder's lease
    assert engine.depth("orders", "g") == 0


def test_several_letters_in_one_call_keep_their_order(engine: EngineDriver) -> None:
    engine.create("orders", 1, ["g"], {})
    engine.create("orders.dlq", 1, ["letters"], {})
    subscription = subscribe(engine, "orders", "g")
    send(engine, "orders", b"1", b"2", b"3")
    got = take(subscription)

    subscription.send_dead_letters([
        DeadLetter(d.ack_id, "orders.dlq", d.body, None, {}) for d in got])

    assert bodies(take(subscribe(engine, "orders.dlq", "letters"))) == [b"1", b"2", b"3"]
