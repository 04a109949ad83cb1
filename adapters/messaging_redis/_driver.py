"""``RedisDriver`` and ``RedisSubscription``: the driver protocol on Redis Streams.

See the package documentation (``messaging_redis``) for the mapping and semantics, and
docs/decisions/0101-redis-visibility-in-the-pending-entries-list.md for why redelivery
works the way it does.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, cast

from messaging.capabilities import Capabilities
from messaging.driver import (
    AckId,
    Delivery,
    Driver,
    OutgoingMessage,
    SeekTarget,
    SendResult,
    Subscription,
    SubscriptionOptions,
)
from messaging.errors import ErrorCode
from messaging.urls import BrokerURL
from messaging_redis import _streams, _wire
from messaging_redis._errors import RedisRefused, classify
from messaging_redis._streams import Add, RedisStreams, StreamApi, ToAdd, Trim

MIN_SERVER = (7, 0)
"""For XPENDING IDLE and XADD NOMKSTREAM (6.2), and the group lag of XINFO GROUPS (7.0)."""
MAX_DELAY = 7 * 24 * 3600.0
"""Longest delay: the adapter's choice (delayed messages wait in server memory)."""
MAX_BATCH = 1000
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
"""Redis's default ``proto-max-bulk-len``: the largest string (the body field) it takes."""
SWEEP_IDLE = 3600.0
"""Seconds a consumer holding nothing may stay idle before a member removes its name."""
FRESH = 1.0
"""Seconds a read-ahead entry may wait for a receive (at most a tenth of the visibility
timeout): its visibility clock started at the read."""

_EMULATED = frozenset({"delay", "dead_letter", "dedup", "visibility_timeout", "extend"})
_DB_PATH = re.compile(r"/?\d*")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The driver options, checked (see ``RedisDriver.option_types``)."""

    default_visibility_timeout: float = 30.0
    reclaim_interval: float = 1.0
    socket_timeout: float = 10.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    dedup_window: float = 300.0
    trim: Trim = dataclasses.field(default_factory=Trim)

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Settings:
        def positive(name: str, default: float) -> float:
            value = options.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value <= 0:  # NaN passes "<= 0"
                raise RedisRefused(ErrorCode.CONFIGURATION,
                                   f"option {name!r} must be a finite number > 0, got {value!r}")
            return float(value)

        maxlen = options.get("maxlen")
        retention = options.get("retention")
        if maxlen is not None and retention is not None:
            raise RedisRefused(ErrorCode.CONFIGURATION,
                               "options 'maxlen' and 'retention' exclude each other "
                               "(XADD trims by MAXLEN or by MINID, not both)")
        settings = cls(
            default_visibility_timeout=positive("default_visibility_timeout", 30.0),
            reclaim_interval=positive("reclaim_interval", 1.0),
            socket_timeout=positive("socket_timeout", 10.0),
            max_message_bytes=int(positive("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)),
            dedup_window=positive("dedup_window", 300.0),
            trim=Trim(
                maxlen=None if maxlen is None else int(positive("maxlen", 1)),
                retention=None if retention is None else positive("retention", 1.0),
            ),
        )
        if settings.reclaim_interval * 2 > settings.socket_timeout:
            # A receive blocks for up to reclaim_interval: the socket must outlast it.
            raise RedisRefused(ErrorCode.CONFIGURATION,
                               "option 'socket_timeout' must be at least twice "
                               "'reclaim_interval'")
        return settings


def _client_options(url: BrokerURL, options: Mapping[str, object], settings: Settings
                    ) -> tuple[str, dict[str, Any]]:
    """The URL and keyword arguments for redis-py (credentials only in the URL text)."""
    if len(url.hosts) > 1:
        raise RedisRefused(ErrorCode.CONFIGURATION,
                           f"{url.redacted}: one Redis server per URL (no cluster or "
                           "sentinel lists)")
    if not _DB_PATH.fullmatch(url.path):
        raise RedisRefused(ErrorCode.CONFIGURATION,
                           f"{url.redacted}: the path must be a database number (/0)")
    # The query holds this library's options, not redis-py's: hand over the rest only.
    text = url.secret().split("?", 1)[0]
    connect_timeout = options.get("connect_timeout", 10.0)
    if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float):
        raise RedisRefused(ErrorCode.CONFIGURATION,
                           f"connect_timeout must be a number, got {connect_timeout!r}")
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": float(connect_timeout),
        "socket_timeout": settings.socket_timeout,
    }
    for name in _TLS_OPTIONS:
        if name in options:
            if url.scheme != "rediss":
                raise RedisRefused(ErrorCode.CONFIGURATION,
                                   f"option {name!r} needs a rediss:// URL")
            kwargs[name] = options[name]
    return text, kwargs


_TLS_OPTIONS: Mapping[str, type] = MappingProxyType({
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": str,
    "ssl_check_hostname": bool,
})


class RedisDriver(Driver):
    """Redis Streams through redis-py. Thread-safe (redis-py's connection pool)."""

    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss")
    option_types: ClassVar[Mapping[str, type]] = MappingProxyType({
        "default_visibility_timeout": float,
        "reclaim_interval": float,
        "socket_timeout": float,
        "max_message_bytes": int,
        "maxlen": int,
        "retention": float,
        "dedup_window": float,
        **_TLS_OPTIONS,
    })
    install_hint: ClassVar[str] = 'pip install "messaging[redis]"'

    def __init__(self, api: StreamApi, settings: Settings, *, durable: bool) -> None:
        self._api = api
        self._settings = settings
        self._dedup_window_ms = math.ceil(settings.dedup_window * 1000)
        self._capabilities = Capabilities(
            # One stream is totally ordered, but members of a group compete per entry and
            # a redelivery comes after later entries: no per-key order (decision 0101).
            ordering="none",
            fan_out=True,
            replay=True,
            max_delay=MAX_DELAY,
            priority=0,
            dead_letter="emulated",
            dedup=True,
            max_message_bytes=settings.max_message_bytes,
            max_headers=None,
            visibility_timeout=True,
            extend=True,
            durable=durable,
            dedup_window=settings.dedup_window,
            max_batch=MAX_BATCH,
            emulated=_EMULATED,
        )

    @classmethod
    def open(cls, url: BrokerURL, options: Mapping[str, object]) -> RedisDriver:
        settings = Settings.from_options(options)
        text, kwargs = _client_options(url, options, settings)
        # The probe answers within connect_timeout or fails: the pooled client's socket
        # timeout is longer (it must outlast a blocking read).
        probe = _streams.connect(text, {**kwargs, "socket_timeout":
                                        kwargs["socket_connect_timeout"],
                                        "single_connection_client": True})
        try:
            info = RedisStreams(probe).server()
        finally:
            probe.close()
        if info.version < MIN_SERVER:
            shown = ".".join(map(str, info.version))
            raise RedisRefused(ErrorCode.UNSUPPORTED,
                               f"{url.redacted} runs Redis {shown}; the adapter needs 7.0+")
        return cls(RedisStreams(_streams.connect(text, kwargs)), settings,
                   durable=info.aof_enabled)

    def capabilities(self, destination: str | None = None) -> Capabilities:
        return self._capabilities

    def send_batch(self, destination: str, messages: Sequence[OutgoingMessage]
                   ) -> list[SendResult]:
        _wire.check_fields(messages)
        # Plain values of one send_many share one headers mapping: encode it once.
        encoded: dict[int, _wire.Parts] = {}
        adds = []
        for message in messages:
            headers = encoded.get(id(message.headers))
            if headers is None:
                headers = encoded[id(message.headers)] = _wire.header_parts(message.headers)
            adds.append(_to_add(message, headers))
        results = self._api.add(destination, adds, self._settings.trim,
                                self._dedup_window_ms)
        try:
            # The usual case, every entry added: each result is its id.
            return [result.decode() for result in results]  # type: ignore[union-attr]
        except AttributeError:  # None (no such stream) or an error for some entry
            pass
        if all(result is None for result in results):
            # Nothing was sent: the portable layer may create the destination and resend.
            raise _missing(destination)
        return [
            _missing(destination) if result is None
            else result if isinstance(result, Exception) else result.decode()
            for result in results
        ]

    def subscribe(self, destination: str, group: str, options: SubscriptionOptions
                  ) -> RedisSubscription:
        if not self._api.create(destination, [group], make_stream=False):
            raise _missing(destination)
        visibility = options.visibility_timeout or self._settings.default_visibility_timeout
        return RedisSubscription(self._api, destination, group, self._settings,
                                 visibility=visibility, prefetch=options.prefetch)

    def create(self, destination: str, partitions: int, groups: Sequence[str],
               options: Mapping[str, object]) -> None:
        # partitions: members of a group compete per entry, so there is nothing to spread.
        if options:
            raise RedisRefused(ErrorCode.CONFIGURATION,
                               f"unknown create option(s) {', '.join(map(repr, options))}; "
                               "the Redis adapter takes none (retention is a connection "
                               "option: maxlen or retention)")
        self._api.create(destination, list(groups), make_stream=True)

    def delete(self, destination: str) -> None:
        self._api.delete(destination)

    def depth(self, destination: str, group: str) -> int:
        depth = self._api.depth(destination, group)
        if depth == -1:
            raise _missing(destination)
        if depth == -2:
            raise RedisRefused(ErrorCode.NOT_FOUND,
                               f"destination {destination!r} has no group {group!r}")
        return depth

    def destinations(self) -> list[str]:
        # The adapter's own keys carry a {hash tag}; destination names cannot.
        return [name for name in self._api.streams() if "{" not in name]

    def groups(self, destination: str) -> list[str]:
        return self._api.groups(destination)

    def error_code(self, error: BaseException) -> ErrorCode:
        return classify(error)

    def as_native(self) -> object:
        """The ``redis.Redis`` client (its connection pool is shared with the driver)."""
        return self._api.native

    def close(self) -> None:
        self._api.close()


class RedisSubscription(Subscription):
    """One member of a consumer group: a consumer named ``host:pid:id~v<ms>``, where
    ``<ms>`` is its visibility timeout, which every member's reclaim honours."""

    def __init__(self, api: StreamApi, destination: str, group: str, settings: Settings,
                 *, visibility: float, prefetch: int) -> None:
        self._api = api
        self.destination = destination
        self.group = group
        self._settings = settings
        self._visibility_ms = math.ceil(visibility * 1000)
        self.consumer = (f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
                         f"~v{self._visibility_ms}")
        self._prefetch = prefetch
        self._default_idle_ms = math.ceil(settings.default_visibility_timeout * 1000)
        self._sweep_idle_ms = math.ceil(SWEEP_IDLE * 1000)
        self._next_collect = 0.0  # monotonic time of the next reclaim; 0: at once
        self._extended: set[bytes] = set()  # parked by extend(), unparked by the ack
        self._extending = 0  # extend() calls between their park and their bookkeeping
        self._acked_meanwhile: set[bytes] = set()  # acked while an extend() was at it
        # Read-ahead (decision 0107): entries an ack's round trip read for the next
        # receive, when the last receive came back full. Guarded by _lock.
        self._ahead: list[_streams.Entry] = []
        self._ahead_at = 0.0  # monotonic time the read-ahead came back
        self._ahead_count = 0  # what the last receive asked for, if it came back full
        self._reading_ahead = False
        self._ahead_generation = 0  # moved on by seek and close: older reads go back
        self._out = 0  # handed out and not yet acked or nacked, for the prefetch bound
        self._lock = threading.Lock()
        self._closed = False

    def receive_batch(self, max_messages: int, timeout: float) -> list[Delivery]:
        count = min(max_messages, self._prefetch)
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now >= self._next_collect:
                reclaimed = self._collect(count)
                if reclaimed:
                    return self._handed_out(reclaimed, count)
                now = time.monotonic()
            ahead = self._from_ahead(count, now)
            if ahead:
                return self._handed_out(_wire.deliveries_of(self.destination, ahead, 1),
                                        count)
            if ahead is None:
                continue  # given back as stale: the reclaim at the top delivers them
            # Block until the deadline, but not past the next reclaim: a due parked or
            # delayed entry wakes nobody by itself.
            wait = min(deadline, self._next_collect) - now
            block_ms = math.ceil(wait * 1000) if wait >= 0.001 else None
            entries = self._api.read(self.destination, self.group, self.consumer, count,
                                     block_ms)
            if entries:
                # A read of new entries (">") is their first delivery to this group.
                return self._handed_out(_wire.deliveries_of(self.destination, entries, 1),
                                        count)
            if time.monotonic() >= deadline:
                return []

    def _handed_out(self, deliveries: list[Delivery], count: int) -> list[Delivery]:
        """Count what goes out; a full batch means more is likely waiting, so the next
        ack reads ahead."""
        with self._lock:
            self._out += len(deliveries)
            self._ahead_count = count if len(deliveries) >= count else 0
        return deliveries

    def _from_ahead(self, count: int, now: float) -> list[_streams.Entry] | None:
        """Up to ``count`` read-ahead entries. Their visibility clock has run since the
        read: past ``FRESH`` they are given back (parked, unread; None is returned) and
        the reclaim that follows at once delivers them again with their idle time
        reset."""
        with self._lock:
            if not self._ahead:
                return []
            entries = self._ahead[:count]
            del self._ahead[:count]
            fresh = now - self._ahead_at <= min(FRESH, self._visibility_ms / 10000)
        if fresh:
            return entries
        self._give_back(entries)
        self._next_collect = 0.0
        return None

    def _give_back(self, entries: Sequence[_streams.Entry]) -> None:
        """Release read-ahead entries never handed out: the next delivery of each has
        the attempt this one would have had."""
        if entries:
            self._api.park(self.destination, self.group,
                           [(entry_id, 1) for entry_id, _ in entries], 0, unread=True)

    def send_acks(self, ack_ids: Sequence[AckId]) -> None:
        ids = [entry_id for entry_id, _ in cast(Sequence[_wire.AckId], ack_ids)]
        extended = self._extended
        unpark = [entry_id for entry_id in ids if entry_id in extended] if extended else []
        read_ahead, generation = self._plan_read_ahead(len(ids))
        try:
            ahead = self._api.ack(self.destination, self.group, ids, unpark, read_ahead)
        finally:
            if read_ahead is not None:
                with self._lock:
                    self._reading_ahead = False
        if ahead:
            self._keep_read_ahead(ahead, generation)
        if self._extended or self._extending:
            # Settled ids leave the set; and an extension in flight may have parked one
            # of them before this ack reached Redis: it must not record it, or the id
            # would wait there for an ack that never comes again. (Redis itself drops a
            # parked id nobody holds at the next reclaim.)
            with self._lock:
                self._extended.difference_update(ids)
                if self._extending:
                    self._acked_meanwhile.update(ids)

    def _plan_read_ahead(self, settled: int) -> tuple[tuple[str, int] | None, int]:
        """Account for ``settled`` deliveries; the (consumer, count) the ack should read
        ahead (None: not this time), and the read-ahead generation it reads in."""
        with self._lock:
            self._out = max(0, self._out - settled)
            # A whole batch like the last, or nothing: piecemeal reads (a worker's acks
            # come a few at a time while it holds many) would only split its receives.
            # (close and seek zero the count: nothing is read after them.)
            count = self._ahead_count
            if (not count or self._prefetch - self._out < count or self._ahead
                    or self._reading_ahead):
                return None, self._ahead_generation
            self._reading_ahead = True
            return (self.consumer, count), self._ahead_generation

    def _keep_read_ahead(self, entries: list[_streams.Entry], generation: int) -> None:
        """Hold what an ack read ahead, unless a close or seek came meanwhile: then it
        goes back at once."""
        with self._lock:
            current = generation == self._ahead_generation
            if current:
                self._ahead = entries
                self._ahead_at = time.monotonic()
        if not current:
            self._give_back(entries)

    def send_nacks(self, ack_ids: Sequence[AckId], delay: float | None) -> None:
        deliveries = [_delivery(ack_id) for ack_id in ack_ids]
        delay_ms = math.ceil(delay * 1000) if delay else 0
        self._api.park(self.destination, self.group, deliveries, delay_ms)
        with self._lock:
            self._out = max(0, self._out - len(deliveries))
            self._extended.difference_update(entry_id for entry_id, _ in deliveries)
        # This member learns of its own nack at once; the others at their next reclaim.
        self._next_collect = min(self._next_collect, time.monotonic() + delay_ms / 1000)

    def extend(self, ack_ids: Sequence[AckId], seconds: float) -> None:
        deliveries = [_delivery(ack_id) for ack_id in ack_ids]
        # Only what was parked and not acked since: one settled before is not parked,
        # and one acked after the park would never be acked again to leave the set.
        with self._lock:
            self._extending += 1
        parked: list[bytes] = []
        try:
            parked = self._api.park(self.destination, self.group, deliveries,
                                    math.ceil(seconds * 1000))
        finally:
            with self._lock:
                self._extending -= 1
                acked = self._acked_meanwhile
                self._extended.update(entry_id for entry_id in parked
                                      if entry_id not in acked)
                if not self._extending:
                    acked.clear()

    def lease(self) -> float:
        return self._visibility_ms / 1000

    def seek(self, target: SeekTarget) -> None:
        self._give_back(self._take_all_ahead())  # read from before the seek
        self._api.set_last_delivered(self.destination, self.group,
                                     _wire.last_delivered_for(target))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._give_back(self._take_all_ahead())
        self._api.leave(self.destination, self.group, self.consumer)

    def _take_all_ahead(self) -> list[_streams.Entry]:
        """Empty the read-ahead, and let no read-ahead in flight refill it."""
        with self._lock:
            entries, self._ahead = self._ahead, []
            self._ahead_count = 0
            self._ahead_generation += 1
        return entries

    def as_native(self) -> object:
        """The ``redis.Redis`` client; this member is ``self.consumer`` in ``self.group``."""
        return self._api.native

    def _collect(self, count: int) -> list[Delivery]:
        collected = self._api.collect(
            self.destination, self.group, self.consumer, count=count,
            default_idle_ms=self._default_idle_ms, sweep_idle_ms=self._sweep_idle_ms,
            trim=self._settings.trim)
        wait = self._settings.reclaim_interval
        if collected.next_due_ms is not None:
            wait = min(wait, max(0.0, (collected.next_due_ms - collected.now_ms) / 1000))
        self._next_collect = time.monotonic() + wait
        destination = self.destination
        return [_wire.delivery_of(destination, entry_id, fields, delivered)
                for entry_id, fields, delivered in collected.entries]


def _to_add(message: OutgoingMessage, headers: _wire.Parts) -> ToAdd:
    if not message.delay and message.dedup_id is None:
        return _wire.parts_of(message, headers=headers)
    message_id = uuid.uuid4().hex if message.delay else None
    return Add(
        _wire.parts_of(message, message_id, headers),
        delay_ms=math.ceil(message.delay * 1000) if message.delay else 0,
        dedup_id=message.dedup_id,
        message_id=message_id,
    )


def _missing(destination: str) -> RedisRefused:
    return RedisRefused(ErrorCode.NOT_FOUND,
                        f"destination {destination!r} does not exist (no stream of that "
                        "name)")


def _delivery(ack_id: AckId) -> _wire.AckId:
    return cast(_wire.AckId, ack_id)
