"""The one table that classifies what confluent-kafka (librdkafka) raises.

``error_code`` looks only at the exception, never at driver state, so the portable layer
can classify errors raised by ``open`` too. librdkafka reports most failures as a
``KafkaException`` whose first argument is a ``KafkaError`` with a numeric code; local
errors have codes starting with an underscore (``_TRANSPORT``), broker errors carry the
protocol's error name (``UNKNOWN_TOPIC_OR_PART``).
"""

from __future__ import annotations

import concurrent.futures

from confluent_kafka import KafkaError, KafkaException

from messaging.errors import ErrorCode


class Unreachable(Exception):
    """No broker answered ``open``'s metadata request within ``connect_timeout``."""


class InvalidRequest(ValueError):
    """An argument the adapter cannot map to Kafka (a bad position, create option...)."""


def _codes(*names: str) -> frozenset[int]:
    return frozenset(getattr(KafkaError, name) for name in names if hasattr(KafkaError, name))


_TABLE: tuple[tuple[frozenset[int], ErrorCode], ...] = (
    (_codes("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_DESTROY", "_WAIT_COORD",
            "NETWORK_EXCEPTION", "BROKER_NOT_AVAILABLE", "LEADER_NOT_AVAILABLE",
            "NOT_LEADER_FOR_PARTITION", "UNKNOWN_LEADER_EPOCH", "FENCED_LEADER_EPOCH",
            "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR",
            "COORDINATOR_LOAD_IN_PROGRESS", "UNKNOWN_MEMBER_ID", "FENCED_INSTANCE_ID",
            "_ASSIGNMENT_LOST", "_MAX_POLL_EXCEEDED", "_FATAL"), ErrorCode.CONNECTION),
    (_codes("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL", "ILLEGAL_SASL_STATE",
            "UNSUPPORTED_SASL_MECHANISM", "TOPIC_AUTHORIZATION_FAILED",
            "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
            "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"), ErrorCode.AUTHENTICATION),
    (_codes("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION",
            "GROUP_ID_NOT_FOUND", "UNKNOWN_TOPIC_ID", "_UNKNOWN_GROUP"), ErrorCode.NOT_FOUND),
    (_codes("MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"), ErrorCode.TOO_LARGE),
    (_codes("_INVALID_ARG", "INVALID_CONFIG", "TOPIC_EXCEPTION", "INVALID_PARTITIONS",
            "INVALID_REPLICATION_FACTOR", "INVALID_REPLICA_ASSIGNMENT", "POLICY_VIOLATION",
            "INVALID_REQUEST", "_INVALID_TYPE", "OFFSET_METADATA_TOO_LARGE"),
     ErrorCode.CONFIGURATION),
    (_codes("_TIMED_OUT", "REQUEST_TIMED_OUT", "_MSG_TIMED_OUT", "_TIMED_OUT_QUEUE",
            "_QUEUE_FULL"), ErrorCode.TIMEOUT),
    (_codes("_UNSUPPORTED_FEATURE", "UNSUPPORTED_VERSION", "UNSUPPORTED_FOR_MESSAGE_FORMAT"),
     ErrorCode.UNSUPPORTED),
)
_BY_CODE: dict[int, ErrorCode] = {code: kind for codes, kind in _TABLE for code in codes}

REBALANCING = _codes("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID",
                     "FENCED_INSTANCE_ID", "_ASSIGNMENT_LOST")
"""Commit refusals that mean "the group is rebalancing (or moved on without this
member)": the acks stay recorded and go with the member's next commit, or the messages
are redelivered to the partition's next owner."""


def kafka_error(error: BaseException) -> KafkaError | None:
    """The ``KafkaError`` inside a ``KafkaException`` (None for anything else)."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0],
                                                                       KafkaError):
        return error.args[0]
    return None


def error_code(error: BaseException) -> ErrorCode:
    """Classify a native exception (see the module doc)."""
    native = kafka_error(error)
    if native is not None:
        return _BY_CODE.get(native.code(), ErrorCode.UNKNOWN)
    if isinstance(error, Unreachable):
        return ErrorCode.CONNECTION
    if isinstance(error, concurrent.futures.TimeoutError | TimeoutError | BufferError):
        # BufferError: librdkafka's local queue stayed full for ``request_timeout``.
        return ErrorCode.TIMEOUT
    if isinstance(error, ValueError | TypeError):
        # confluent-kafka's refusal of a bad argument or configuration value, and ours.
        return ErrorCode.CONFIGURATION
    if isinstance(error, RuntimeError) and "closed" in str(error):
        # "Consumer closed" / "Producer closed": the connection is gone.
        return ErrorCode.CONNECTION
    return ErrorCode.UNKNOWN


def rebalancing(error: BaseException) -> bool:
    native = kafka_error(error)
    return native is not None and native.code() in REBALANCING
