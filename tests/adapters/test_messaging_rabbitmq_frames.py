"""The adapter's frame reading (``messaging_rabbitmq._frames``) against pika's own: the same
frames, in the same order, from the same bytes however the socket splits them."""

from __future__ import annotations

import random
from typing import Any

import pika
import pytest
from messaging_rabbitmq import _frames
from pika import frame, spec
from pika.connection import Connection


class Reader:
    """The attributes both readers use, and a record of the frames processed."""

    def __init__(self, close_after: int | None = None) -> None:
        self._frame_buffer = b""
        self.bytes_received = 0
        self.frames: list[tuple[object, ...]] = []
        self.is_closed = False
        self._close_after = close_after

    def _process_frame(self, value: Any) -> None:
        self.frames.append(_described(value))
        if self._close_after is not None and len(self.frames) >= self._close_after:
            self.is_closed = True
            self._frame_buffer = b""  # what pika's reset of the connection does

    # pika's own reader, run over this object
    def _read_frame(self) -> Any:
        return frame.decode_frame(self._frame_buffer)

    def _trim_frame_buffer(self, byte_count: int) -> None:
        Connection._trim_frame_buffer(self, byte_count)  # type: ignore[arg-type]

    def pika_read(self, data: bytes) -> None:
        Connection._on_data_available(self, data)  # type: ignore[arg-type]


def _described(value: Any) -> tuple[object, ...]:
    if isinstance(value, frame.Method):
        method = value.method
        return ("method", value.channel_number, method.NAME, sorted(vars(method).items()))
    if isinstance(value, frame.Header):
        return ("header", value.channel_number, value.body_size,
                sorted(vars(value.properties).items()))
    if isinstance(value, frame.Body):
        return ("body", value.channel_number, bytes(value.fragment))
    return (type(value).__name__,)


def _stream(seed: int) -> bytes:
    """Deliveries of bodies from 0 bytes to 3 frames' worth, heartbeats between."""
    rng = random.Random(seed)
    frame_max = 4096
    parts: list[bytes] = []
    for tag in range(1, 60):
        body = rng.randbytes(rng.choice([0, 1, 100, 4000, 4088, 10 * 1024]))
        parts.append(frame.Method(1, spec.Basic.Deliver(
            consumer_tag="ctag", delivery_tag=tag, redelivered=tag % 3 == 0,
            exchange="orders", routing_key=f"key-{tag}")).marshal())
        parts.append(frame.Header(1, len(body), pika.BasicProperties(
            content_type="application/octet-stream", message_id=f"id-{tag}",
            headers={"n": tag, "x-delivery-count": tag % 4})).marshal())
        room = frame_max - 8
        for first in range(0, len(body), room):
            parts.append(frame.Body(1, body[first:first + room]).marshal())
        if tag % 7 == 0:
            parts.append(frame.Heartbeat().marshal())
    return b"".join(parts)


def _chunks(data: bytes, rng: random.Random, most: int) -> list[bytes]:
    out, start = [], 0
    while start < len(data):
        size = rng.randint(1, most)
        out.append(data[start:start + size])
        start += size
    return out


@pytest.mark.parametrize("most", [1, 7, 100, 4096, 65536, 1 << 20])
def test_the_same_frames_as_pika_reads_whatever_the_reads_hold(most: int) -> None:
    data = _stream(most)
    rng = random.Random(most)
    ours, theirs = Reader(), Reader()
    for chunk in _chunks(data, rng, most):
        _frames.read(ours, chunk)
        theirs.pika_read(chunk)
        assert ours._frame_buffer == theirs._frame_buffer  # the same partial frame kept

    assert ours.frames == theirs.frames
    assert len(ours.frames) > 150
    assert ours.bytes_received == theirs.bytes_received == len(data)


def test_a_read_stops_where_the_connection_closes() -> None:
    data = _stream(1)
    ours, theirs = Reader(close_after=5), Reader(close_after=5)
    _frames.read(ours, data)
    theirs.pika_read(data)

    assert ours.frames == theirs.frames
    assert len(ours.frames) == 5
    assert ours._frame_buffer == theirs._frame_buffer == b""


def test_a_frame_with_a_bad_end_marker_raises_as_in_pika() -> None:
    broken = bytearray(frame.Heartbeat().marshal())
    broken[-1] = 0
    with pytest.raises(pika.exceptions.InvalidFrameError):
        _frames.read(Reader(), bytes(broken))


def test_a_protocol_header_is_read_as_pika_reads_it() -> None:
    refusal = b"AMQP\x00\x00\x09\x01"  # a broker refusing the client's protocol version
    ours, theirs = Reader(), Reader()
    _frames.read(ours, refusal)
    theirs.pika_read(refusal)
    assert ours.frames == theirs.frames == [("ProtocolHeader",)]


def test_a_pika_without_the_replaced_names_keeps_its_own_reader() -> None:
    class Elsewhere:
        _transport = None

    assert _frames.install(Elsewhere()) is False


def test_a_frame_is_processed_as_soon_as_its_last_byte_is_read() -> None:
    heartbeat = frame.Heartbeat().marshal()  # the smallest frame: 8 bytes
    ours = Reader()
    _frames.read(ours, heartbeat[:7])
    assert ours.frames == []
    _frames.read(ours, heartbeat[7:])
    assert ours.frames == [("Heartbeat",)]
    assert ours._frame_buffer == b""
