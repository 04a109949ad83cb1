"""A group's declaration, kept on Kafka even while Kafka will not take it from outside.

A group exists from ``create(groups=...)`` or its first ``subscribe`` (contract 11): the
driver commits the topic's current end offsets for it, so that every record sent from
then on reaches it, even before a member has joined. Kafka takes a commit from outside a
group only while the group has no members, and a group that reads another topic has
some: one service's group on two topics is one Kafka consumer group. Kept only in the
declaring process, the declaration would be lost with it (or with a consumer closed
before its first assignment), and the group would start later, past what was sent
meanwhile.

So the declaration then goes to a *side group* of its own,
``__messaging-declared.<topic>.<group>``, which never has members: Kafka always takes
its commit, keeps it like any committed offset, and drops it with the topic. A group
without a committed offset on a partition starts where its side group says; the
member assigned the partition commits that as the group's own, after which the side
group is deleted. Plain Kafka tools list side groups; :func:`is_side` hides them
from ``groups()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException

from messaging_kafka import _errors
from messaging_kafka._client import Admin

PREFIX = "__messaging-declared."

GROUP_HAS_MEMBERS = frozenset({KafkaError.UNKNOWN_MEMBER_ID, KafkaError.NON_EMPTY_GROUP,
                               KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                               KafkaError.GROUP_SUBSCRIBED_TO_TOPIC})
"""What Kafka answers a commit from outside a group that has members."""


def side_group(topic: str, group: str) -> str:
    return f"{PREFIX}{topic}.{group}"


def is_side(name: str) -> bool:
    return name.startswith(PREFIX)


def declared_on(topic: str, names: Sequence[str]) -> list[str]:
    """The groups whose side groups on ``topic`` are among ``names``."""
    prefix = side_group(topic, "")
    return [name[len(prefix):] for name in names if name.startswith(prefix)]


def declare(admin: Admin, topic: str, group: str, partitions: Sequence[int]) -> dict[int, int]:
    """Give ``group`` a start on every partition where it has no committed offset: its
    side group's, else the current end. Returns the starts Kafka would not take as the
    group's own (it has members), which the member assigned those partitions commits;
    they are then kept in the side group too."""
    # The ends are read before the group's offsets. Another process declaring the group
    # at the same moment may commit its own ends in between, and records sent after that
    # belong to the group: they lie at or past these ends, so this commit, which
    # replaces that one, cannot skip them (it may repeat some sent just before).
    ends = admin.offsets(topic, partitions, "latest")
    committed = admin.group_offsets(group, topic, partitions)
    missing = [p for p in partitions if committed.get(p, (-1, None))[0] < 0]
    if not missing:
        return {}
    side = side_group(topic, group)
    recorded = {p: offset for p, (offset, _) in admin.group_offsets(side, topic, missing).items()
                if offset >= 0}
    starts = {p: recorded.get(p, ends[p]) for p in missing}
    try:
        admin.set_group_offsets(group, topic, starts)
    except KafkaException as error:
        native = _errors.kafka_error(error)
        if native is None or native.code() not in GROUP_HAS_MEMBERS:
            raise
        new = {p: offset for p, offset in starts.items() if p not in recorded}
        if new:
            admin.set_group_offsets(side, topic, new)
        return starts
    if recorded:
        admin.forget_group(side)  # the group's own offsets replace it
    return {}


def positions(admin: Admin, topic: str, group: str, partitions: Sequence[int]
              ) -> dict[int, tuple[int, str | None]]:
    """The group's committed (offset, metadata) per partition, its declaration's offset
    where it has none; offset < 0: neither."""
    found = admin.group_offsets(group, topic, partitions) if partitions else {}
    committed = {p: found.get(p, (-1, None)) for p in partitions}
    missing = [p for p, (offset, _) in committed.items() if offset < 0]
    if missing:
        declared = admin.group_offsets(side_group(topic, group), topic, missing)
        committed.update({p: (offset, None) for p, (offset, _) in declared.items()
                          if offset >= 0})
    return committed
