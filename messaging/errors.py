"""The error hierarchy, and the one table that maps driver error codes to it.

Errors
------
Every error this library raises is a :class:`MessagingError`. When a broker's client
library raised first, its exception is chained as ``__cause__`` (like SQLAlchemy's
``.orig``), so nothing of the native detail is lost. Drivers never raise these classes
for broker failures themselves: they classify a native exception with
``Driver.error_code`` and the portable layer raises the matching class (see
:func:`translate`). That keeps the mapping in one place per driver and the raising in
one place overall.
"""

from __future__ import annotations

import enum


class MessagingError(Exception):
    """Base class of every error raised by ``messaging``.

    An error ``Producer.send_many`` raises while sending also says what became of each
    message of the call, by its index in the call: every index is in ``sent`` or
    ``failed``. (``send`` attaches them too where the backend reported its message's
    own outcome.) Errors raised before sending, by a check, have neither attribute."""

    sent: dict[int, str]
    """Index -> broker id of each message the broker confirmed."""
    failed: dict[int, MessagingError]
    """Index -> error of each message not confirmed (the error raised for those never
    sent); sending these again loses nothing, and may duplicate."""


class ConnectionFailed(MessagingError):
    """The broker could not be reached, or the connection was lost."""


class AuthenticationFailed(MessagingError):
    """The broker refused the credentials."""


class DestinationNotFound(MessagingError):
    """The destination (topic, exchange, queue, stream) does not exist."""


class MessageTooLarge(MessagingError):
    """A message is over the backend's ``max_message_bytes``; nothing was sent."""


class UnsupportedFeature(MessagingError):
    """The backend lacks the feature asked for (see ``client.capabilities``)."""


class ConfigurationError(MessagingError):
    """Bad URL, unknown scheme, unknown option, or an option out of range."""


class SerializationError(MessagingError):
    """A value could not be encoded, or a body could not be decoded."""


class Timeout(MessagingError):
    """The operation did not finish in the time allowed."""


class AlreadySettled(MessagingError):
    """A message was settled again in a different way (ack after nack, nack after ack)."""


class ErrorCode(enum.Enum):
    """What a driver says a native exception means. ``Driver.error_code`` returns one."""

    UNKNOWN = "unknown"
    CONNECTION = "connection"
    AUTHENTICATION = "authentication"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    CONFIGURATION = "configuration"
    TIMEOUT = "timeout"


_ERROR_FOR_CODE: dict[ErrorCode, type[MessagingError]] = {
    ErrorCode.UNKNOWN: MessagingError,
    ErrorCode.CONNECTION: ConnectionFailed,
    ErrorCode.AUTHENTICATION: AuthenticationFailed,
    ErrorCode.NOT_FOUND: DestinationNotFound,
    ErrorCode.TOO_LARGE: MessageTooLarge,
    ErrorCode.UNSUPPORTED: UnsupportedFeature,
    ErrorCode.CONFIGURATION: ConfigurationError,
    ErrorCode.TIMEOUT: Timeout,
}


def translate(code: ErrorCode, native: BaseException, doing: str) -> MessagingError:
    """Build the portable error for ``native``; the caller raises it ``from native``.

    ``doing`` says what was being attempted ("send to 'orders'"), because a native
    message alone rarely says which call failed.
    """
    error_class = _ERROR_FOR_CODE[code]
    return error_class(f"{doing}: {type(native).__name__}: {native}")
