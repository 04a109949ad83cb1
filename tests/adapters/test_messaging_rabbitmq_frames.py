"""The adapter's frame reading (``messaging_rabbitmq._frames``) against pika's own: from the
same bytes, however the socket splits them, the same deliveries reach the channel's
``_on_deliver``, the same other frames reach pika's dispatch, in the same order, with the
same counters. Both readers run pika's real dispatch code (``Connection._process_frame``
and what it calls, ``Channel._handle_content_frame`` and its ``ContentFrameAssembler``)
over a stand-in that has only the state that code touches."""

from __future__ import annotations

import random
from typing import Any

import pika
import pytest
from messaging_rabbitmq import _frames
from pika import frame, spec
from pika.callback import CallbackManager
from pika.channel import Channel, ContentFrameAssembler
from pika.connection import Connection

_connection: Any = Connection
_channel: Any = Channel
Event = tuple[object, ...]


class FakeChannel:
    _handle_content_frame = _channel._handle_content_frame

    def __init__(self, events: list[Event]) -> None:
        self._content_assembler = ContentFrameAssembler()
        self._events = events

    def _on_deliver(self, method_frame: Any, header_frame: Any, body: bytes) -> None:
        self._events.append(("deliver", method_frame.channel_number,
                             _fields(method_frame.method), header_frame.body_size,
                             _fields(header_frame.properties), body))

    def _on_unexpected_frame(self, value: Any) -> None:
        self._events.append(("unexpected", type(value).__name__))


class Heartbeats:
    def __init__(self, events: list[Event]) -> None:
        self._events = events

    def received(self) -> None:
        self._events.append(("heartbeat",))


class Reader:
    """A connection as far as reading goes: pika's own methods over the state they use."""

    _process_frame = _connection._process_frame
    _process_callbacks = _connection._process_callbacks
    _is_method_frame = _connection._is_method_frame
    _has_pending_callbacks = _connection._has_pending_callbacks
    _deliver_frame_to_channel = _connection._deliver_frame_to_channel
    _read_frame = _connection._read_frame
    _trim_frame_buffer = _connection._trim_frame_buffer
    pika_read = _connection._on_data_available

    def __init__(self, close_after: int | None = None) -> None:
        self.events: list[Event] = []
        self._frame_buffer = b""
        self.bytes_received = 0
        self.frames_received = 0
        self.is_closed = False
        self.callbacks = CallbackManager()
        self._heartbeat_checker = Heartbeats(self.events)
        self._channels = {1: FakeChannel(self.events), 2: FakeChannel(self.events)}
        self._close_after = close_after
        self.callbacks.add(1, spec.Basic.CancelOk, self._called)  # a reply pika awaits

    def _called(self, value: Any) -> None:
        self.events.append(("callback", value.channel_number, value.method.NAME))
        self._count_towards_close()

    def read(self, data: bytes) -> None:
        _frames.read(self, data)

    def _count_towards_close(self) -> None:
        if self._close_after is not None and len(self.events) >= self._close_after:
            self.is_closed = True
            self._frame_buffer = b""  # what pika's reset of the connection does


def _fields(value: Any) -> list[tuple[str, Any]]:
    return sorted(vars(value).items())


def _deliver(channel: int, tag: int, body: bytes, frame_max: int = 4096) -> list[bytes]:
    parts = [
        frame.Method(channel, spec.Basic.Deliver(
            consumer_tag="ctag", delivery_tag=tag, redelivered=tag % 3 == 0,
            exchange="orders", routing_key=f"key-{tag}")).marshal(),
        frame.Header(channel, len(body), pika.BasicProperties(
            content_type="application/octet-stream", message_id=f"id-{tag}",
            headers={"n": tag, "x-delivery-count": tag % 4})).marshal()]
    room = frame_max - 8
    parts += [frame.Body(channel, body[first:first + room]).marshal()
              for first in range(0, len(body), room)]
    return parts


def _stream(seed: int) -> bytes:
    """Deliveries on two channels of bodies from 0 bytes to three body frames' worth,
    heartbeats and a method pika waits for between them."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    for tag in range(1, 80):
        body = rng.randbytes(rng.choice([0, 1, 100, 4000, 4088, 4089, 10 * 1024]))
        parts += _deliver(1 if tag % 5 else 2, tag, body)
        if tag % 7 == 0:
            parts.append(frame.Heartbeat().marshal())
        if tag == 40:
            parts.append(frame.Method(1, spec.Basic.CancelOk(consumer_tag="ctag")).marshal())
    return b"".join(parts)


def _chunks(data: bytes, rng: random.Random, most: int) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        size = rng.randint(1, most)
        out.append(data[start:start + size])
        start += size
    return out


def _state(reader: Reader) -> tuple[object, ...]:
    """What is kept between reads: the partial frame, the counters, and which channels
    hold a delivery half assembled."""
    return (reader._frame_buffer, reader.bytes_received, reader.frames_received,
            [number for number, channel in reader._channels.items()
             if channel._content_assembler._method_frame is not None])


@pytest.mark.parametrize("most", [1, 7, 100, 4096, 65536, 1 << 20])
def test_the_same_deliveries_as_pika_whatever_the_reads_hold(most: int) -> None:
    data = _stream(most)
    rng = random.Random(most)
    ours, theirs = Reader(), Reader()
    for chunk in _chunks(data, rng, most):
        ours.read(chunk)
        theirs.pika_read(chunk)
        assert _state(ours) == _state(theirs)  # the same partial frame kept

    assert ours.events == theirs.events
    kinds = [event[0] for event in ours.events]
    assert kinds.count("deliver") == 79
    assert kinds.count("callback") == 1
    assert kinds.count("heartbeat") == 11
    assert ours.bytes_received == len(data)


def test_a_delivery_after_a_half_assembled_one_waits_its_turn() -> None:
    # A delivery whose body has not all arrived, then more frames: the assembler holds
    # the first delivery, so nothing may bypass it.
    first, second = _deliver(1, 1, b"a" * 5000), _deliver(1, 2, b"b")
    data = b"".join(first + second)
    cut = len(b"".join(first)) - 10
    ours, theirs = Reader(), Reader()
    for chunk in (data[:cut], data[cut:]):
        ours.read(chunk)
        theirs.pika_read(chunk)

    assert ours.events == theirs.events
    assert [event[5] for event in ours.events] == [b"a" * 5000, b"b"]
    assert _state(ours) == _state(theirs)


@pytest.mark.parametrize(("other", "order"), [(b"2" * 50, (3, 4, 0, 1, 5, 2)),
                                              (b"2" * 50, (3, 0, 4, 5, 1, 2)),
                                              (b"", (3, 0, 4, 1, 2))])
def test_deliveries_interleaved_across_channels_reach_each_channel_whole(
        other: bytes, order: tuple[int, ...]) -> None:
    frames = _deliver(1, 1, b"1" * 50) + _deliver(2, 2, other)  # 0-2, then channel 2's
    data = b"".join(frames[index] for index in order)
    ours, theirs = Reader(), Reader()
    ours.read(data)
    theirs.pika_read(data)

    assert ours.events == theirs.events
    assert [(event[1], event[5]) for event in ours.events] == [(2, other), (1, b"1" * 50)]
    assert _state(ours) == _state(theirs)


def test_a_delivery_on_a_channel_not_open_is_dropped_as_pika_drops_it() -> None:
    data = b"".join(_deliver(3, 1, b"lost") + _deliver(1, 2, b"kept"))
    ours, theirs = Reader(), Reader()
    ours.read(data)
    theirs.pika_read(data)

    assert ours.events == theirs.events
    assert [event[5] for event in ours.events] == [b"kept"]
    assert _state(ours) == _state(theirs)


def test_a_delivery_that_replaces_a_half_assembled_one_is_read_as_pika_reads_it() -> None:
    # A broker breaking the protocol: a Deliver, then a whole second delivery on the same
    # channel. pika's assembler lets the second replace the first; so must this reader.
    first, second, third = _deliver(1, 1, b"a"), _deliver(1, 2, b"b"), _deliver(1, 3, b"c")
    data = b"".join([first[0], *second, *third])
    ours, theirs = Reader(), Reader()
    ours.read(data)
    theirs.pika_read(data)

    assert ours.events == theirs.events
    assert _state(ours) == _state(theirs)


def test_a_body_longer_than_its_header_says_raises_as_in_pika() -> None:
    parts = _deliver(1, 1, b"abc")
    parts[1] = frame.Header(1, 2, pika.BasicProperties()).marshal()  # says 2 bytes
    data = b"".join(parts)
    for read in (Reader().read, Reader().pika_read):
        with pytest.raises(pika.exceptions.BodyTooLongError):
            read(data)


def test_a_read_stops_where_the_connection_closes() -> None:
    data = _stream(1)
    ours, theirs = Reader(close_after=3), Reader(close_after=3)
    ours.read(data)
    theirs.pika_read(data)

    assert ours.events == theirs.events
    assert ours.is_closed
    assert _state(ours) == _state(theirs)


def test_a_frame_with_a_bad_end_marker_raises_as_in_pika() -> None:
    broken = bytearray(b"".join(_deliver(1, 1, b"x")))
    broken[-1] = 0
    for read in (Reader().read, Reader().pika_read):
        with pytest.raises(pika.exceptions.InvalidFrameError):
            read(bytes(broken))


def test_a_protocol_header_is_read_as_pika_reads_it() -> None:
    refusal = b"AMQP\x00\x00\x09\x01"  # a broker refusing the client's protocol version
    ours, theirs = Reader(), Reader()
    seen: list[Any] = []
    ours._process_frame = theirs._process_frame = seen.append  # type: ignore[method-assign]
    ours.read(refusal)
    theirs.pika_read(refusal)
    assert [type(value).__name__ for value in seen] == ["ProtocolHeader"] * 2


def test_a_frame_is_processed_as_soon_as_its_last_byte_is_read() -> None:
    heartbeat = frame.Heartbeat().marshal()  # the smallest frame: 8 bytes
    ours = Reader()
    ours.read(heartbeat[:7])
    assert ours.events == []
    ours.read(heartbeat[7:])
    assert ours.events == [("heartbeat",)]
    assert ours._frame_buffer == b""


def test_a_pika_without_the_names_used_keeps_its_own_reader() -> None:
    class Elsewhere:
        _transport = None

    assert _frames.install(Elsewhere()) is False
