"""Per-partition bookkeeping of one group member, and the group's record of it on Kafka.

Kafka keeps one committed offset per (group, partition): "everything before it is
done". Acks arrive out of order, so the adapter commits only the contiguous acked
prefix: the committed offset is the lowest offset this member fetched and has not
settled. What lies between that offset and the furthest offset fetched (acked
messages above a gap, messages handed out but unacked, and how often each was
delivered) travels in the commit's *metadata* string, which Kafka stores next to the
offset for exactly this kind of use. The partition's next owner (after a rebalance, a
crash or a restart) reads it back and so

* skips what was already acked above the gap (no duplicate for an out-of-order ack);
* reports ``attempt`` = deliveries so far + 1 for what comes back.

Format (ASCII, relative offsets, inclusive ranges)::

    mk1;e=<end - committed>;u=<unsettled ranges>;n=<delivery-count runs>
    mk1;e=7;u=0,3-4;n=0:1,3-4:2

reads: from the committed offset C, offsets C..C+6 were fetched; C, C+3 and C+4 are not
settled (the rest are); C was delivered once, C+3 and C+4 twice. A commit with nothing
pending carries no metadata at all, like any plain Kafka consumer's. Kafka bounds the
string (``offset.metadata.max.bytes``, 4096 by default): past ``METADATA_LIMIT`` the
delivery counts go first (``attempt`` then under-counts), then the furthest ranges
(their acked messages are then delivered again): never a loss.

Nothing here talks to Kafka; the subscription drives it.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("messaging.kafka")

PREFIX = "mk1"
METADATA_LIMIT = 4000
"""Characters of metadata the adapter writes at most (Kafka's default limit is 4096)."""


@dataclasses.dataclass(frozen=True)
class Record:
    """What a group's committed metadata says about one partition (absolute offsets)."""

    end: int
    unsettled: frozenset[int] = frozenset()
    deliveries: Mapping[int, int] = dataclasses.field(default_factory=dict)


def _ranges(values: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted, distinct values as inclusive (first, last) runs."""
    if values and values[-1] - values[0] == len(values) - 1:
        return [(values[0], values[-1])]  # the common case, one run: no loop
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _show(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def encode(committed: int, end: int, unsettled: Sequence[int], deliveries: Mapping[int, int],
           limit: int = METADATA_LIMIT) -> str:
    """The metadata for a commit of ``committed`` (``unsettled`` sorted, absolute)."""
    if end <= committed and not unsettled:
        return ""
    fast = _encode_one_run(committed, end, unsettled, deliveries, limit)
    if fast is not None:
        return fast
    unsettled_text: list[str] = []
    used = len(PREFIX) + 24  # the prefix, "e=<digits>" and separators
    cut_at: int | None = None
    for first, last in _ranges([o - committed for o in unsettled]):
        piece = _show(first, last)
        if used + len(piece) + 1 > limit:
            cut_at = first  # from here on a next owner re-reads: duplicates, no loss
            break
        unsettled_text.append(piece)
        used += len(piece) + 1
    relative_end = end - committed if cut_at is None else cut_at
    counts: list[str] = []
    run: tuple[int, int, int] | None = None  # first, last, count
    for offset in unsettled:
        relative = offset - committed
        if cut_at is not None and relative >= cut_at:
            break
        count = deliveries.get(offset, 0)
        if count < 1:
            continue
        if run is not None and relative == run[1] + 1 and count == run[2]:
            run = (run[0], relative, count)
            continue
        if run is not None:
            counts.append(f"{_show(run[0], run[1])}:{run[2]}")
        run = (relative, relative, count)
    if run is not None:
        counts.append(f"{_show(run[0], run[1])}:{run[2]}")
    head = f"{PREFIX};e={relative_end};u={','.join(unsettled_text)}"
    with_counts = f"{head};n={','.join(counts)}"
    if len(with_counts) <= limit:
        return with_counts
    log.warning("kafka: %d unsettled messages above offset %d: their delivery counts do not "
                "fit the commit metadata (attempt will under-count after a rebalance)",
                len(unsettled), committed)
    return head


def _encode_one_run(committed: int, end: int, unsettled: Sequence[int],
                    deliveries: Mapping[int, int], limit: int) -> str | None:
    """What :func:`encode` writes when the unsettled offsets are one run, all delivered
    equally often: the record right after a receive (everything handed out once) and
    after in-order acks. Each such commit would otherwise cost a Python loop over every
    unsettled offset. None: not that case, :func:`encode` takes the general path."""
    if not unsettled or unsettled[-1] - unsettled[0] != len(unsettled) - 1:
        return None
    counts = set(map(deliveries.get, unsettled, itertools.repeat(0)))
    if len(counts) != 1:
        return None
    count = counts.pop()
    span = _show(unsettled[0] - committed, unsettled[-1] - committed)
    if len(PREFIX) + 24 + len(span) + 1 > limit:
        return None  # the general path cuts the range
    text = (f"{PREFIX};e={end - committed};u={span};n={span}:{count}" if count >= 1
            else f"{PREFIX};e={end - committed};u={span};n=")
    return text if len(text) <= limit else None


def decode(committed: int, metadata: str | None) -> Record:
    """The record in ``metadata`` (committed by this adapter); an empty record for
    metadata written by anything else."""
    if not metadata or not metadata.startswith(PREFIX + ";"):
        return Record(end=committed)
    fields = dict(part.split("=", 1) for part in metadata.split(";")[1:] if "=" in part)
    try:
        end = committed + int(fields.get("e", "0"))
        unsettled: set[int] = set()
        for piece in filter(None, fields.get("u", "").split(",")):
            first, _, last = piece.partition("-")
            unsettled.update(range(committed + int(first), committed + int(last or first) + 1))
        deliveries: dict[int, int] = {}
        for piece in filter(None, fields.get("n", "").split(",")):
            span, _, count = piece.partition(":")
            first, _, last = span.partition("-")
            for offset in range(committed + int(first), committed + int(last or first) + 1):
                deliveries[offset] = int(count)
    except ValueError:
        log.warning("kafka: unreadable commit metadata %r at offset %d ignored (messages "
                    "acked above it may come again)", metadata[:80], committed)
        return Record(end=committed)
    return Record(end=end, unsettled=frozenset(unsettled), deliveries=deliveries)


Taken = tuple[int, int, int, Any, int]
"""(partition, epoch, offset, message, attempt) of one record handed out."""


_MESSAGE, _DUE, _OUT = 0, 1, 2
"""Fields of a held record, ``[message, due, in_flight]``: what this member fetched and
has not settled. ``due`` is the wall-clock time before which it is not handed out (a
delayed send). A list rather than an object: one is made per record fetched."""


class PartitionState:
    """One assigned partition: what was fetched, handed out, settled and committed.

    Not thread-safe: the subscription holds its lock around every call.
    """

    def __init__(self, partition: int, epoch: int, committed: int | None,
                 record: Record | None = None) -> None:
        self.partition = partition
        self.epoch = epoch
        """Ack ids carry it: an ack from before a seek or a reassignment is stale."""
        self.position = committed
        """The offset the client hands us next (None: not known before the first)."""
        self._end = record.end if record is not None else (committed or 0)
        self._unsettled_before = set(record.unsettled) if record is not None else set()
        self.deliveries: dict[int, int] = dict(record.deliveries) if record else {}
        self.pending: dict[int, list[Any]] = {}  # held records; insertion order ==
        # offset order
        self._ready: list[int] = []
        """Offsets waiting to be handed out, ascending. A sorted list rather than a heap:
        fetched offsets only grow, so admit() appends, and take() reads from the front
        and cuts what it took in one slice; only a record put back (a nack, a read-ahead
        given back) is inserted at its place."""
        self.blocked_until = 0.0
        self.last_commit: tuple[int, str] | None = None
        """The (offset, metadata) last sent, so an unchanged partition is not recommitted."""
        self.paused = False

    # -- fetching and handing out ----------------------------------------------------
    def admit(self, offset: int, message: object, due: float = 0.0) -> bool:
        """A record the client fetched. False when it must not be handed out: the group
        settled it already (acked above a gap before a rebalance) or it is a stale
        repeat from before a seek."""
        position = self.position
        if position is not None and offset < position:
            return False
        self.position = offset + 1
        before = self._unsettled_before
        if before:  # an inherited record: only its unsettled offsets come again
            if offset < self._end and offset not in before:
                return False
            before.discard(offset)
        elif offset < self._end:
            return False
        self.pending[offset] = [message, due, False]
        self._ready.append(offset)  # above all held: position only grows
        return True

    def take(self, now: float, limit: int, out: list[Taken]) -> None:
        """Hand out up to ``limit`` - len(out) ready records in offset order, appending
        (partition, epoch, offset, message, attempt) to ``out``. A partition blocked by a delayed
        nack gives nothing; a delayed send waits without holding up later records."""
        if now < self.blocked_until:
            return
        wanted = limit - len(out)
        if wanted <= 0:
            return
        waiting: list[int] = []
        ready = self._ready
        pending = self.pending
        deliveries = self.deliveries
        append = out.append
        partition, epoch = self.partition, self.epoch
        seen = 0  # entries of ready read: they leave it, but for those still waiting
        for offset in ready:
            seen += 1
            held = pending.get(offset)
            if held is None or held[_OUT]:
                continue  # settled or handed out meanwhile
            if held[_DUE] > now:
                waiting.append(offset)
                continue
            attempt = deliveries.get(offset, 0) + 1
            deliveries[offset] = attempt
            held[_OUT] = True
            append((partition, epoch, offset, held[_MESSAGE], attempt))
            wanted -= 1
            if not wanted:
                break
        ready[:seen] = waiting  # below everything after them: the order holds

    def next_due(self, now: float) -> float | None:
        """When something not ready now may become ready (None: nothing waits on time)."""
        if self.blocked_until > now:
            return self.blocked_until if self._ready else None
        dues = [held[_DUE] for offset in self._ready
                if (held := self.pending.get(offset)) is not None and held[_DUE] > now]
        return min(dues) if dues else None

    # -- settlement -------------------------------------------------------------------
    def ack(self, offset: int) -> bool:
        """Settle a handed-out record. False for one this state does not hold out."""
        held = self.pending.get(offset)
        if held is None or not held[_OUT]:
            return False
        del self.pending[offset]
        self.deliveries.pop(offset, None)
        return True

    def nack(self, offset: int, now: float, delay: float | None) -> bool:
        """Put a handed-out record back at its place in the partition's order. With a
        delay the whole partition waits: nothing behind it overtakes it (seek-back)."""
        held = self.pending.get(offset)
        if held is None or not held[_OUT]:
            return False
        held[_OUT] = False
        bisect.insort(self._ready, offset)
        if delay:
            self.blocked_until = max(self.blocked_until, now + delay)
        return True

    def holds_out(self) -> bool:
        """Whether a record handed out is not settled yet."""
        return any(held[_OUT] for held in self.pending.values())

    def give_back(self, offset: int) -> None:
        """Undo :meth:`take` of a record its receiver never got (a read-ahead): it is
        ready again at its place, and its delivery is not counted."""
        held = self.pending.get(offset)
        if held is None or not held[_OUT]:
            return
        held[_OUT] = False
        bisect.insort(self._ready, offset)
        count = self.deliveries.get(offset, 0) - 1
        if count > 0:
            self.deliveries[offset] = count
        else:
            self.deliveries.pop(offset, None)

    # -- committing -------------------------------------------------------------------
    def commit_point(self) -> tuple[int, str] | None:
        """(offset, metadata) to commit now, None when nothing is known yet."""
        if self.position is None:
            return None
        before = sorted(o for o in self._unsettled_before if o >= self.position) if (
            self._unsettled_before) else []
        end = max(self.position, self._end)
        if not self.pending and not before:
            return end, ""
        unsettled = list(self.pending)
        if before:
            unsettled = sorted(unsettled + before)
        committed = unsettled[0]
        return committed, encode(committed, end, unsettled, self.deliveries)

    def changed(self) -> tuple[int, str] | None:
        """The commit point when it differs from the last one sent, else None."""
        point = self.commit_point()
        return None if point is None or point == self.last_commit else point

    def reset(self, offset: int, epoch: int) -> None:
        """After a seek: the member starts over at ``offset``; what it held is dropped
        (acks of it are then stale) and the delivery record restarts."""
        self.epoch = epoch
        self.position = offset
        self._end = offset
        self._unsettled_before.clear()
        self.deliveries.clear()
        self.pending.clear()
        self._ready.clear()
        self.blocked_until = 0.0
        self.last_commit = None
