"""The one table that says what a native Redis error means (``RedisDriver.error_code``).

redis-py raises three kinds of errors: transport errors by class (``ConnectionError``,
``TimeoutError``, ``AuthenticationError``...), server refusals as ``ResponseError``
whose text starts with the server's error code (``NOGROUP``, ``WRONGTYPE``, ``NOPERM``,
``BUSY``...; Lua scripts keep that code in front of what they add), and client-side
argument errors (``DataError``). The driver adds :class:`RedisRefused` for what it
refuses itself before anything is sent (a reserved field name, a bad option or seek
target, a destination that does not exist), carrying the code it means.
"""

from __future__ import annotations

from redis import exceptions as redis_errors

from messaging.errors import ErrorCode


class RedisRefused(Exception):
    """The driver refuses a call, or reports a missing destination; ``code`` says which
    ``messaging`` error it becomes."""

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code


# Transport and client-side failures, by class (first match wins: subclasses first,
# because AuthenticationError and BusyLoadingError are ConnectionErrors in redis-py).
_CLASSES: tuple[tuple[type[BaseException], ErrorCode], ...] = (
    (redis_errors.AuthenticationError, ErrorCode.AUTHENTICATION),
    (redis_errors.AuthenticationWrongNumberOfArgsError, ErrorCode.AUTHENTICATION),
    (redis_errors.AuthorizationError, ErrorCode.AUTHENTICATION),
    (redis_errors.NoPermissionError, ErrorCode.AUTHENTICATION),
    # the server is starting or failing over: as good as unreachable for now (the worker
    # pauses and carries on)
    (redis_errors.BusyLoadingError, ErrorCode.CONNECTION),
    (redis_errors.ReadOnlyError, ErrorCode.CONNECTION),
    (redis_errors.ClusterDownError, ErrorCode.CONNECTION),
    (redis_errors.TryAgainError, ErrorCode.CONNECTION),
    # a cluster redirect (MOVED, ASK): this adapter talks to one server, not a cluster
    (redis_errors.AskError, ErrorCode.CONFIGURATION),
    (redis_errors.ConnectionError, ErrorCode.CONNECTION),
    # no answer in time: the connection is as good as lost, and a send's outcome unknown
    (redis_errors.TimeoutError, ErrorCode.CONNECTION),
    # something that is not a Redis server answered (or the stream broke mid-reply)
    (redis_errors.InvalidResponse, ErrorCode.CONNECTION),
    (redis_errors.DataError, ErrorCode.CONFIGURATION),
    (ConnectionError, ErrorCode.CONNECTION),
)

# Server error codes: the first word of a ResponseError's text.
_CODES: dict[str, ErrorCode] = {
    "NOGROUP": ErrorCode.NOT_FOUND,
    "NOAUTH": ErrorCode.AUTHENTICATION,
    "WRONGPASS": ErrorCode.AUTHENTICATION,
    "NOPERM": ErrorCode.AUTHENTICATION,
    # a key of the destination's name holds something else than a stream
    "WRONGTYPE": ErrorCode.CONFIGURATION,
    # transient server states
    "BUSY": ErrorCode.CONNECTION,
    "LOADING": ErrorCode.CONNECTION,
    "READONLY": ErrorCode.CONNECTION,
    "MASTERDOWN": ErrorCode.CONNECTION,
    "TRYAGAIN": ErrorCode.CONNECTION,
    "CLUSTERDOWN": ErrorCode.CONNECTION,
    # a cluster redirect: this adapter talks to one server (or a proxy), not to a cluster
    "MOVED": ErrorCode.CONFIGURATION,
    "ASK": ErrorCode.CONFIGURATION,
    "CROSSSLOT": ErrorCode.CONFIGURATION,
}

# Generic "ERR ..." replies, by what their text says.
_TEXTS: tuple[tuple[str, ErrorCode], ...] = (
    ("requires the key to exist", ErrorCode.NOT_FOUND),
    ("no such key", ErrorCode.NOT_FOUND),
    ("exceeds maximum allowed size", ErrorCode.TOO_LARGE),
    ("invalid bulk length", ErrorCode.TOO_LARGE),
    ("unknown command", ErrorCode.UNSUPPORTED),
    ("max number of clients reached", ErrorCode.CONNECTION),
)


def classify(error: BaseException) -> ErrorCode:
    """What ``error`` means for the portable layer. Depends on nothing but ``error``."""
    if isinstance(error, RedisRefused):
        return error.code
    for error_class, meaning in _CLASSES:
        if isinstance(error, error_class):
            return meaning
    if isinstance(error, redis_errors.ResponseError):
        return _classify_reply(str(error))
    return ErrorCode.UNKNOWN


def _classify_reply(text: str) -> ErrorCode:
    code = text.split(" ", 1)[0]
    if code in _CODES:
        return _CODES[code]
    lowered = text.lower()
    for fragment, meaning in _TEXTS:
        if fragment in lowered:
            return meaning
    return ErrorCode.UNKNOWN
