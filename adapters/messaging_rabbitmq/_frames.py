"""How an open pika connection reads its socket: 64 KiB at a time, each frame decoded
from a slice of its own, and a delivery whose frames are all in hand handed to its
channel at once (decision 0110).

pika 1.x reads 4 KiB per ``recv`` and keeps what it has not decoded in one ``bytes``
buffer: each read is appended to it (a copy of the buffer) and each decoded frame is
cut off its front (another copy of everything after it). Then each frame goes through
the connection's dispatch (callbacks looked up, the channel found, the content
assembler fed) before the third frame of a delivery reaches the consumer. For the
adapter's I/O thread that was most of the CPU a message cost.

Here a read takes what the socket holds, up to :data:`RECV_BYTES`; the frames in it are
found from their length fields and each decoded by pika's own ``decode_frame`` from a
slice of just its bytes. A ``Basic.Deliver`` whose header and body frames are in the
same read, on a channel with no content half assembled, goes straight to the channel's
``_on_deliver``, as pika's assembler would hand it over (pika looks up callbacks for
each method frame first, but nothing waits for a ``Basic.Deliver``: one that did
would leave the channel's assembler a header without its method); anything else (a
delivery split over reads, any other frame) goes through pika's own ``_process_frame``.
The partial frame left at the end is kept.

Only pika's private names are used, so :func:`install` checks that this pika has
them, and leaves the connection reading as pika does when it does not.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from pika import frame, spec
from pika.channel import ContentFrameAssembler

RECV_BYTES = 64 * 1024
"""Most bytes one ``recv`` takes (pika's own: 4096)."""

_HEADER = struct.Struct(">BHL")  # frame type, channel, payload size
_OVERHEAD = 8  # the 7-byte header and the frame-end octet
_HEAD = 7
_PROTOCOL_HEADER = b"AMQP"  # what a broker refusing the protocol version sends
_DELIVER = spec.Basic.Deliver


def install(connection: Any) -> bool:
    """Make the open ``connection`` read this way; False when this pika lacks a name
    used here (the connection then reads as pika does)."""
    stream: Any = getattr(connection, "_transport", None)
    if not (isinstance(getattr(connection, "_frame_buffer", None), bytes)
            and isinstance(getattr(connection, "bytes_received", None), int)
            and isinstance(getattr(connection, "frames_received", None), int)
            and callable(getattr(connection, "_process_frame", None))
            and isinstance(getattr(connection, "_channels", None), dict)
            and isinstance(getattr(stream, "_MAX_RECV_BYTES", None), int)
            and callable(getattr(frame, "decode_frame", None))
            and hasattr(ContentFrameAssembler(), "_method_frame")):
        return False
    # Both shadow a class attribute on this connection's objects only.
    stream._MAX_RECV_BYTES = RECV_BYTES
    connection._on_data_available = functools.partial(read, connection)
    return True


def read(connection: Any, data: bytes) -> None:
    """Decode and process every whole frame in what the connection kept plus ``data``;
    keep the rest. (pika's ``Connection._on_data_available``, without the copies and,
    for a delivery in hand, without the dispatch of each of its frames.)"""
    kept = connection._frame_buffer
    buffer = kept + data if kept else data
    connection._frame_buffer = b""
    decode, process, header = frame.decode_frame, connection._process_frame, _HEADER
    start, size = 0, len(buffer)
    while size - start >= _OVERHEAD:
        if buffer.startswith(_PROTOCOL_HEADER, start):
            end = start + _OVERHEAD
        else:
            end = start + header.unpack_from(buffer, start)[2] + _OVERHEAD
            if end > size:
                break
        consumed, value = decode(buffer[start:end])  # raises on a bad frame end
        if value is None:
            break
        whole = (_delivery(connection, value, buffer, end, size)
                 if type(value) is frame.Method and type(value.method) is _DELIVER else None)
        if whole is None:
            start += consumed
            connection.bytes_received += consumed
            process(value)
        else:
            channel, head, body, after, frames = whole
            connection.bytes_received += after - start
            connection.frames_received += frames
            start = after
            channel._on_deliver(value, head, body)
        if connection.is_closed:
            return  # pika has reset the connection: the rest of the read is dropped
    connection._frame_buffer = buffer[start:] if start else buffer


def _delivery(connection: Any, method: frame.Method[Any], buffer: bytes, at: int,
              size: int) -> tuple[Any, frame.Header, bytes, int, int] | None:
    """For a ``Basic.Deliver`` ending at ``at``: its channel, header frame, body, where
    its last frame ends and how many frames it took, when the header frame and every
    body frame follow it in ``buffer`` and pika would hand them to the channel's
    ``_on_deliver`` unchanged; None otherwise (pika's own path then takes each frame)."""
    number = method.channel_number
    channel = connection._channels.get(number)
    if channel is None or channel._content_assembler._method_frame is not None:
        return None
    if size - at < _OVERHEAD:
        return None
    kind, on, length = _HEADER.unpack_from(buffer, at)
    end = at + length + _OVERHEAD
    if kind != spec.FRAME_HEADER or on != number or end > size:
        return None
    _, head = frame.decode_frame(buffer[at:end])
    if not isinstance(head, frame.Header):
        return None
    wanted, frames = head.body_size, 2
    fragments: list[bytes] = []
    seen = 0
    while seen < wanted:
        if size - end < _OVERHEAD:
            return None
        kind, on, length = _HEADER.unpack_from(buffer, end)
        first, end = end + _HEAD, end + length + _OVERHEAD
        if (kind != spec.FRAME_BODY or on != number or end > size
                or buffer[end - 1] != spec.FRAME_END or seen + length > wanted):
            return None  # pika's path raises or waits, as it should
        fragments.append(buffer[first:end - 1])
        seen += length
        frames += 1
    body = fragments[0] if len(fragments) == 1 else b"".join(fragments)
    return channel, head, body, end, frames
