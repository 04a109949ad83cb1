"""The Redis calls the driver makes, behind a small protocol (Go CDK ``rabbitpubsub/amqp.go``
style): :class:`StreamApi` says what the driver needs, :class:`RedisStreams` does it with
redis-py, and the adapter's unit tests put a fake in its place.

Each method is one round trip (a pipeline or one script), never a retry loop: a failed
call raises redis-py's exception, which the driver lets propagate for the portable layer
to classify.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from messaging_redis import _scripts
from messaging_redis._wire import Parts

if TYPE_CHECKING:
    Client = redis.Redis[bytes]
else:
    Client = redis.Redis

Entry = tuple[bytes, Parts]
"""An entry id and its fields (name, value, name, value...). A reply left as the server
sent it (``_pipelined``, scripts) holds each entry as a two-item list; the adapter only
ever unpacks an entry, so it is typed as the pair it is read as."""


SCRIPTED_BODY_BYTES = 512
"""A batch of plain entries whose bodies average at most this many bytes is added by the
ADD_MANY script instead of a pipeline of XADD: about 1.5x the throughput at 100 bytes;
around 1 KiB the two are even, and above it copying the arguments into the script costs
more than the commands it saves."""
SCRIPTED_ENTRIES = 100
"""Entries per ADD_MANY call."""
RUN_BYTES = 6000
"""Packed commands up to this size are joined into one socket write until it is past
this size; larger ones are written alone, uncopied (redis-py's own cutoff and rule)."""

try:  # what redis-py packs commands with when hiredis is there (decision 0105)
    from hiredis import pack_command as _pack_command
except ImportError:  # the redis extra installs it; without, redis-py's packer
    _pack_command = None  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True, slots=True)
class Trim:
    """How each XADD trims the stream: to about ``maxlen`` entries, or to the entries of
    the last ``retention`` seconds (MINID); neither when both are None."""

    maxlen: int | None = None
    retention: float | None = None

    def arguments(self) -> list[str]:
        """The XADD trim arguments (approximate: trimming whole nodes is far cheaper)."""
        if self.maxlen is not None:
            return ["MAXLEN", "~", str(self.maxlen)]
        if self.retention is not None:
            return ["MINID", "~", str(int((time.time() - self.retention) * 1000))]
        return []


@dataclasses.dataclass(frozen=True, slots=True)
class Add:
    """One entry to add through the send script: with a delay (``message_id`` is the id
    it carries) and/or a dedup id."""

    parts: Parts
    delay_ms: int = 0
    dedup_id: str | None = None
    message_id: str | None = None


ToAdd = Parts | Add
"""A plain entry is just its fields (the common case costs no object of its own)."""

AddResult = bytes | None | Exception
"""The id of the added entry (or of the message, for a delayed or repeated one), None
when the stream does not exist, or the error for this entry alone."""


@dataclasses.dataclass(frozen=True, slots=True)
class Collected:
    entries: list[tuple[bytes, Parts, int]]
    """Claimed entries with their delivery count."""
    next_due_ms: int | None
    """Server time of the earliest parked or delayed entry, if any."""
    now_ms: int
    """Server time when the collection ran."""


@dataclasses.dataclass(frozen=True, slots=True)
class ServerInfo:
    version: tuple[int, ...]
    aof_enabled: bool


class StreamApi(Protocol):
    """What the driver needs from Redis. Methods may be called from any thread."""

    @property
    def native(self) -> object: ...

    def server(self) -> ServerInfo: ...

    def add(self, stream: str, entries: Sequence[ToAdd], trim: Trim,
            dedup_window_ms: int) -> list[AddResult]: ...

    def read(self, stream: str, group: str, consumer: str, count: int,
             block_ms: int | None) -> list[Entry]: ...

    def collect(self, stream: str, group: str, consumer: str, *, count: int,
                default_idle_ms: int, sweep_idle_ms: int, trim: Trim) -> Collected: ...

    def park(self, stream: str, group: str, deliveries: Sequence[tuple[bytes, int]],
             delay_ms: int, *, unread: bool = False) -> list[bytes]:
        """Park the deliveries that are still the ones received (same delivery count)
        until ``delay_ms`` from now; the ids of those parked. ``unread``: they were read
        ahead and never handed out, so their delivery count goes back by one."""

    def ack(self, stream: str, group: str, ids: Sequence[bytes], unpark: Sequence[bytes],
            read_ahead: tuple[str, int] | None = None) -> list[Entry]:
        """XACK ``ids`` (and take ``unpark`` out of the parked set). With ``read_ahead``
        (consumer, count), the same round trip also reads up to ``count`` new entries
        for that consumer without blocking, and returns them; [] otherwise. An error of
        the ack raises; one of the read only returns [] (the next read meets it)."""

    def leave(self, stream: str, group: str, consumer: str) -> None: ...

    def create(self, stream: str, groups: Sequence[str], make_stream: bool) -> bool: ...

    def delete(self, stream: str) -> None: ...

    def depth(self, stream: str, group: str) -> int: ...

    def set_last_delivered(self, stream: str, group: str, last_id: str) -> None:
        """XGROUP SETID, though never past the stream's last entry: the group reads on
        from there (an id beyond it would skip every entry added until then)."""

    def streams(self) -> list[str]: ...

    def groups(self, stream: str) -> list[str]: ...

    def close(self) -> None: ...


def delayed_key(stream: str) -> str:
    return f"{{{stream}}}:delayed"


def delayed_due_key(stream: str) -> str:
    return f"{{{stream}}}:delayed:due"


def parked_key(stream: str, group: str) -> str:
    return f"{{{stream}}}:parked:{group}"


def dedup_keys(stream: str) -> list[str]:
    return [f"{{{stream}}}:dedup", f"{{{stream}}}:dedup:ids"]


def connect(url: str, options: Mapping[str, Any]) -> Client:
    """A redis-py client that never retries (the portable layer decides what a failure
    means) and speaks RESP2, whose replies this module parses."""
    settings: dict[str, Any] = {
        **options,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_error": [],
        "protocol": 2,
        "decode_responses": False,
    }
    return cast(Client, redis.Redis.from_url(url, **settings))


class RedisStreams:
    """:class:`StreamApi` with redis-py."""

    def __init__(self, client: Client) -> None:
        self._client = client
        # The installed stubs (types-redis 4.6) leave some commands untyped.
        self._untyped: Any = client
        self._send = client.register_script(_scripts.SEND)
        self._add_many = client.register_script(_scripts.ADD_MANY)
        self._collect = client.register_script(_scripts.COLLECT)
        self._park = client.register_script(_scripts.PARK)
        self._leave = client.register_script(_scripts.LEAVE)
        self._create = client.register_script(_scripts.CREATE)
        self._delete = client.register_script(_scripts.DELETE)
        self._depth = client.register_script(_scripts.DEPTH)

    @property
    def native(self) -> Client:
        return self._client

    def server(self) -> ServerInfo:
        pipe = self._client.pipeline(transaction=False)
        pipe.info("server")
        pipe.info("persistence")
        server, persistence = pipe.execute()
        version = tuple(int(part) for part in str(server["redis_version"]).split(".")
                        if part.isdigit())
        return ServerInfo(version, bool(int(persistence.get("aof_enabled", 0))))

    def add(self, stream: str, entries: Sequence[ToAdd], trim: Trim,
            dedup_window_ms: int) -> list[AddResult]:
        trim_args = trim.arguments()
        # NOMKSTREAM: a send to a destination that was never created reports it (None)
        # instead of making a stream that no group reads.
        # Bytes, encoded once per batch: redis-py encodes every str argument of every
        # queued command again, and these repeat in each XADD of the batch.
        xadd = [b"XADD", stream.encode(), b"NOMKSTREAM", *(a.encode() for a in trim_args),
                b"*"]
        if not any(isinstance(entry, Add) for entry in entries):
            plain = cast(Sequence[Parts], entries)
            # One entry (every producer.send) goes the direct round trip too: redis-py's
            # command wrapper would cost more than the adapter's own work on a send.
            if len(plain) > 1 and (sum(len(parts[1]) for parts in plain)
                                   <= SCRIPTED_BODY_BYTES * len(plain)):
                return self._add_scripted(stream, plain, trim_args)
            return self._pipelined([(*xadd, *parts) for parts in plain])
        pipe: Any = self._client.pipeline(transaction=False)
        queue = pipe.execute_command
        scripted = False
        for entry in entries:
            if isinstance(entry, Add):
                scripted = True
                self._send(keys=[stream, delayed_key(stream), delayed_due_key(stream),
                                 *dedup_keys(stream)],
                           args=[entry.delay_ms, entry.dedup_id or "", dedup_window_ms,
                                 entry.message_id or "", len(trim_args), *trim_args,
                                 *entry.parts],
                           client=pipe)
            else:
                queue(*xadd, *entry)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        if not scripted:
            return replies
        results: list[AddResult] = []
        for entry, reply in zip(entries, replies, strict=True):
            if isinstance(entry, Add) and isinstance(reply, list):
                status, message_id = reply
                results.append(None if int(status) == 0 else cast(bytes, message_id))
            else:
                results.append(reply)
        return results

    def _pipelined(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Each command's reply, or its ``ResponseError``, in order, in one round trip
        (decision 0109): what a redis-py pipeline does (or ``execute_command`` for one
        command), without its Python per command (argument handling, response
        callbacks): 1-2 us per message less, which at 10 KiB is what the adapter's own
        work costs. The replies stay as the server sent them.
        (Joining the packed commands into fewer, larger socket writes is slower: the
        server then starts on a batch only once the client has copied all of it.)"""
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(_packed(connection, commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as error:
                    replies.append(error)
            return replies
        except BaseException:
            connection.disconnect()  # replies may be left unread: it cannot be reused
            raise
        finally:
            pool.release(connection)

    def _add_scripted(self, stream: str, entries: Sequence[Parts], trim_args: list[str]
                      ) -> list[AddResult]:
        """Plain entries through ADD_MANY, ``SCRIPTED_ENTRIES`` a call (so no call holds
        the server for long); several calls are pipelined in one round trip, a single one
        is made directly (a pipeline's setup costs about 1 us per entry of 100)."""
        head: list[Any] = [len(trim_args), *trim_args]
        chunks = [entries[start:start + SCRIPTED_ENTRIES]
                  for start in range(0, len(entries), SCRIPTED_ENTRIES)]
        calls = []
        for chunk in chunks:
            args = head.copy()
            for parts in chunk:
                args.append(len(parts))
                args += parts
            calls.append(args)
        replies: list[Any]
        try:
            if len(calls) == 1:
                replies = [self._add_many(keys=[stream], args=calls[0])]
            else:
                pipe: Any = self._client.pipeline(transaction=False)
                for args in calls:
                    self._add_many(keys=[stream], args=args, client=pipe)
                replies = pipe.execute(raise_on_error=False)
        except redis.ResponseError as error:  # the script itself refused: nothing added
            return [error] * len(entries)
        results: list[AddResult] = []
        for chunk, reply in zip(chunks, replies, strict=True):
            # A call that failed as a whole (an error reply) added none of its entries.
            results += reply if isinstance(reply, list) else [reply] * len(chunk)
        return results

    def read(self, stream: str, group: str, consumer: str, count: int,
             block_ms: int | None) -> list[Entry]:
        # Through _pipelined: the reply stays as the server sent it (redis-py would turn
        # each entry's fields into a dict that the driver walks once anyway).
        [reply] = self._pipelined([_read_new(stream, group, consumer, count, block_ms)])
        if isinstance(reply, Exception):
            raise reply
        return _new_entries(reply)

    def collect(self, stream: str, group: str, consumer: str, *, count: int,
                default_idle_ms: int, sweep_idle_ms: int, trim: Trim) -> Collected:
        trim_args = trim.arguments()
        keys = [stream, parked_key(stream, group), delayed_key(stream),
                delayed_due_key(stream)]
        reply = self._collect(keys=keys, args=[
            group, consumer, count, default_idle_ms, _scripts.PARKED_CONSUMER,
            sweep_idle_ms, len(trim_args), *trim_args,
        ])
        entries, next_due, now = reply
        claimed = [(entry_id, parts, int(delivered)) for entry_id, parts, delivered in entries]
        return Collected(claimed, None if int(next_due) < 0 else int(next_due), int(now))

    def park(self, stream: str, group: str, deliveries: Sequence[tuple[bytes, int]],
             delay_ms: int, *, unread: bool = False) -> list[bytes]:
        args: list[Any] = [group, _scripts.PARKED_CONSUMER, delay_ms, "1" if unread else "0"]
        for entry_id, delivered in deliveries:
            args += [entry_id, delivered]
        return list(self._park(keys=[stream, parked_key(stream, group)], args=args))

    def ack(self, stream: str, group: str, ids: Sequence[bytes], unpark: Sequence[bytes],
            read_ahead: tuple[str, int] | None = None) -> list[Entry]:
        commands: list[Sequence[Any]] = [("XACK", stream, group, *ids)]
        if unpark:
            commands.append(("ZREM", parked_key(stream, group), *unpark))
        if read_ahead is not None:
            commands.append(_read_new(stream, group, *read_ahead, None))
        replies = self._pipelined(commands)  # the XREADGROUP reply as the server sent it
        settled = replies[:-1] if read_ahead is not None else replies
        for reply in settled:
            if isinstance(reply, Exception):
                raise reply
        read = replies[-1] if read_ahead is not None else None
        if isinstance(read, Exception):
            return []  # a speculative read: the next receive's own read meets the error
        return _new_entries(read)

    def leave(self, stream: str, group: str, consumer: str) -> None:
        self._leave(keys=[stream], args=[group, consumer])

    def create(self, stream: str, groups: Sequence[str], make_stream: bool) -> bool:
        made = self._create(keys=[stream], args=["1" if make_stream else "0", *groups])
        return int(made) == 1

    def delete(self, stream: str) -> None:
        self._delete(keys=[stream, delayed_key(stream), delayed_due_key(stream),
                           *dedup_keys(stream)],
                     args=[parked_key(stream, "")])

    def depth(self, stream: str, group: str) -> int:
        return int(self._depth(keys=[stream, delayed_due_key(stream)], args=[group]))

    def set_last_delivered(self, stream: str, group: str, last_id: str) -> None:
        if last_id not in ("0", "$"):
            last = self._untyped.xinfo_stream(stream)["last-generated-id"]
            if _id_order(last_id) > _id_order(last):
                # Entries added between the two calls are before last_id too: skipping
                # them is what the seek asked for.
                last_id = "$"
        self._client.xgroup_setid(stream, group, last_id)

    def streams(self) -> list[str]:
        return [name.decode("utf-8", "surrogateescape")
                for name in self._client.scan_iter(_type="stream", count=1000)]

    def groups(self, stream: str) -> list[str]:
        return [group["name"].decode("utf-8", "surrogateescape")
                for group in self._untyped.xinfo_groups(stream)]

    def close(self) -> None:
        self._client.close()


def _read_new(stream: str, group: str, consumer: str, count: int, block_ms: int | None
              ) -> tuple[object, ...]:
    """The XREADGROUP of up to ``count`` entries never delivered to the group (">"),
    blocking ``block_ms`` at most (None: not at all)."""
    block = () if block_ms is None else ("BLOCK", block_ms)
    return ("XREADGROUP", "GROUP", group, consumer, "COUNT", count, *block,
            "STREAMS", stream, ">")


def _new_entries(reply: Any) -> list[Entry]:
    """The entries of one stream's XREADGROUP reply (as the server sent it)."""
    return cast(list[Entry], reply[0][1]) if reply else []


def _packed(connection: Any, commands: Sequence[Sequence[Any]]) -> list[bytes]:
    """``commands`` in RESP, as redis-py's ``pack_commands`` writes them (the same writes),
    packed by hiredis straight away: redis-py's packer first walks every argument in
    Python, 2-3 us per 10 KiB XADD (nine arguments), which is what the adapter's own work
    costs per message."""
    if _pack_command is None:
        return cast(list[bytes], connection.pack_commands(commands))
    writes: list[bytes] = []
    run: list[bytes] = []
    size = 0
    for command in commands:
        piece = _pack_command(tuple(command))
        large = len(piece) > RUN_BYTES
        if (large or size > RUN_BYTES) and run:
            writes.append(b"".join(run))
            run, size = [], 0
        if large:
            writes.append(piece)
        else:
            run.append(piece)
            size += len(piece)
    if run:
        writes.append(b"".join(run))
    return writes


def _id_order(entry_id: str | bytes) -> tuple[int, int]:
    """An entry id (``MS-SEQ``) as numbers, in the stream's order."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, sequence = text.partition("-")
    return int(millis), int(sequence or 0)
