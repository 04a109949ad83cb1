"""``python -m bench redis``: the Redis Streams adapter against plain redis-py, in one run.

For 100-byte and 10 KiB bodies, at each batch size, the send, receive+ack and end-to-end
rates (see :mod:`bench.harness`; best of ``--rounds`` alternating runs) of the adapter
next to a baseline that does the same work with redis-py alone, on the same server (so
with the same persistence settings: whatever AOF/fsync policy the server runs with
applies to both) and with the same trimming (none):

* send: ``producer.send_many`` (``send`` at batch 1) against a pipeline of ``XADD`` per
  batch (one ``XADD`` at batch 1);
* receive+ack: ``consumer.receive`` + ``ack_many`` (``ack`` at batch 1) against
  ``XREADGROUP COUNT batch BLOCK`` + one ``XACK`` of the batch (``XACK`` per message).

Two baselines: ``bare`` adds the body field alone; ``fields`` also adds the
``content-type`` field the adapter puts on a bytes body, so the second ratio is the cost
of the adapter's code and the first adds what that field costs the server.

The broker comes from ``--url``, else ``$MESSAGING_TEST_REDIS_URL``, else
redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import messaging
from bench import harness
from bench.harness import GROUP, Ops, chunks

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MESSAGES = 10_000
_WAIT = 10.0
_OCTETS = b"application/octet-stream"  # the content-type of a bytes body


def main(argv: list[str]) -> int:
    return harness.compare(
        argv, name="redis", doc=__doc__, default_url=DEFAULT_URL,
        url_env="MESSAGING_TEST_REDIS_URL", default_messages=DEFAULT_MESSAGES, body=bytes,
        baselines={"bare": _raw_ops, "fields": _raw_ops_with_fields},
        title=lambda client: f"Redis adapter vs plain redis-py on {client.url} "
                             f"({'AOF on' if client.capabilities.durable else 'no AOF'}, "
                             f"{_parser()}, both sides); bytes bodies; ratio = "
                             "adapter/redis-py",
        summary="against bare redis-py {bare:.3f}, against redis-py with the same fields "
                "{fields:.3f}",
        # redis-py and the adapter are synchronous: the sides can take turns batch by
        # batch, so a busy second on the shared cores slows both alike.
        gate="fields", interleave=True)


def _parser() -> str:
    """Which reply parser redis-py uses here (both sides share it): hiredis, which the
    adapter's extra installs, makes both several times faster per message."""
    from redis.utils import HIREDIS_AVAILABLE

    return "hiredis parser" if HIREDIS_AVAILABLE else "pure-Python parser"


def _raw_ops_with_fields(client: messaging.Client, destination: str, body: bytes) -> Ops:
    return _raw_ops(client, destination, body, content_type=True)


def _raw_ops(client: messaging.Client, destination: str, body: bytes,
             content_type: bool = False) -> Ops:
    native: Any = client.as_native()
    fields = {b"body": body, **({b"content-type": _OCTETS} if content_type else {})}
    consumer = f"bench-raw-{uuid.uuid4().hex[:8]}"

    def send(count: int, batch: int) -> None:
        if batch == 1:
            for _ in range(count):
                native.xadd(destination, fields)
            return
        for size in chunks(count, batch):
            pipe = native.pipeline(transaction=False)
            for _ in range(size):
                pipe.xadd(destination, fields)
            pipe.execute()

    def drain(count: int, batch: int) -> None:
        got = 0
        deadline = time.monotonic() + _WAIT
        while got < count:
            reply = native.xreadgroup(GROUP, consumer, {destination: ">"},
                                      count=min(batch, count - got), block=1000)
            received = reply[0][1] if reply else []
            if received:
                deadline = time.monotonic() + _WAIT
            elif time.monotonic() > deadline:
                raise messaging.Timeout(f"{count - got} messages did not arrive")
            if batch == 1:
                for entry_id, _ in received:
                    native.xack(destination, GROUP, entry_id)
            elif received:
                native.xack(destination, GROUP, *(entry_id for entry_id, _ in received))
            got += len(received)

    return Ops(send, drain)
