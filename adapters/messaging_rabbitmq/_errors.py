"""The adapter's one error table, and the few exceptions the adapter itself raises.

Errors
------
:func:`error_code` is the only place where a native exception gets a meaning; the
portable layer raises the matching ``messaging`` error with the native one as
``__cause__``. It looks at the exception's class and, for an AMQP channel or connection
close, at the reply code the broker sent (``404 NOT_FOUND``, ``403 ACCESS_REFUSED``,
``406 PRECONDITION_FAILED`` ...), because pika raises one class for all of them.

The adapter raises its own exceptions only where pika has none for the situation: a
connection that did not open within ``connect_timeout``, a delivery whose channel is
gone, a message that cannot be encoded as AMQP (routing key or header table too long),
a message the broker refused with ``basic.nack``. They subclass pika's exceptions where
one fits, so code written against pika still catches them (pika ships no type
information, hence the ``type: ignore`` on those class lines).
"""

from __future__ import annotations

import pika.exceptions as native
from pika.adapters.utils import connection_workflow

from messaging.errors import ErrorCode


class ConnectTimeout(native.AMQPConnectionError):  # type: ignore[misc]
    """No connection within ``connect_timeout`` seconds (a host that does not answer)."""


class ConnectionDown(native.AMQPConnectionError):  # type: ignore[misc]
    """The connection is lost and the next attempt to open it is not due yet."""


class StaleDelivery(native.AMQPChannelError):  # type: ignore[misc]
    """The channel a delivery came on is closed: the broker has already put the message
    back (it is redelivered with ``attempt`` + 1), so it can no longer be acked."""


class QueueDeleted(native.ConsumerCancelled):  # type: ignore[misc]
    """Deliveries of a consumer the broker cancelled because its queue was deleted: they
    went with the queue, so they can be neither acked nor delivered again."""


class ReservedHeader(native.AMQPError):  # type: ignore[misc]
    """A user's header that is the broker's or the adapter's own delivery bookkeeping
    (read for ``attempt``, never shown in ``Message.headers``)."""


class KeyTooLong(native.AMQPError):  # type: ignore[misc]
    """A key longer than 255 UTF-8 bytes cannot be an AMQP routing key."""


class HeadersTooLarge(native.AMQPError):  # type: ignore[misc]
    """The header table does not fit in one AMQP frame (``frame_max``)."""


class BrokerNack(native.AMQPChannelError):  # type: ignore[misc]
    """The broker answered a publish with ``basic.nack``: it did not take the message."""


def error_code(error: BaseException) -> ErrorCode:
    """Classify ``error``; depends on nothing but the exception (see ``Driver.error_code``)."""
    if isinstance(error, connection_workflow.AMQPConnectionWorkflowFailed):
        return _workflow_code(error)
    if isinstance(error, connection_workflow.AMQPConnectorPhaseErrorBase):
        return error_code(error.exception)
    if isinstance(error, connection_workflow.AMQPConnectorException):
        return ErrorCode.CONNECTION  # stack timeout, aborted connection attempt
    if isinstance(error, native.AuthenticationError | native.ProbableAuthenticationError):
        return ErrorCode.AUTHENTICATION
    if isinstance(error, native.ProbableAccessDeniedError):
        return ErrorCode.AUTHENTICATION  # the user may not open this virtual host
    if isinstance(error, native.ConnectionClosed):
        return _connection_close_code(error.reply_code)
    if isinstance(error, native.ChannelClosed):
        return _channel_close_code(error.reply_code, error.reply_text)
    if isinstance(error, native.ConsumerCancelled):
        return ErrorCode.NOT_FOUND  # the broker cancels consumers of a deleted queue
    if isinstance(error, StaleDelivery):
        return ErrorCode.CONNECTION
    if isinstance(error, HeadersTooLarge):
        return ErrorCode.TOO_LARGE
    if isinstance(error, KeyTooLong | ReservedHeader | native.ShortStringTooLong):
        return ErrorCode.CONFIGURATION
    if isinstance(error, native.AMQPConnectionError | native.ChannelWrongStateError):
        return ErrorCode.CONNECTION
    if isinstance(error, TimeoutError):
        return ErrorCode.TIMEOUT
    if isinstance(error, OSError):
        return ErrorCode.CONNECTION  # socket errors: refused, reset, unreachable
    return ErrorCode.UNKNOWN


def _workflow_code(error: connection_workflow.AMQPConnectionWorkflowFailed) -> ErrorCode:
    """Every host was tried; a refusal of the credentials beats a refused socket, because
    it is what the user has to fix."""
    codes = [error_code(attempt) for attempt in error.exceptions]
    for preferred in (ErrorCode.AUTHENTICATION, ErrorCode.CONFIGURATION):
        if preferred in codes:
            return preferred
    return ErrorCode.CONNECTION


def _connection_close_code(reply_code: int) -> ErrorCode:
    if reply_code in (403, 530):  # ACCESS_REFUSED, NOT_ALLOWED (virtual host)
        return ErrorCode.AUTHENTICATION
    return ErrorCode.CONNECTION  # 320 CONNECTION_FORCED, 501 FRAME_ERROR, client close ...


def _channel_close_code(reply_code: int, reply_text: str) -> ErrorCode:
    if reply_code == 404:  # NOT_FOUND: no such exchange or queue
        return ErrorCode.NOT_FOUND
    if reply_code == 403:  # ACCESS_REFUSED: permissions, or a reserved "amq." name
        return ErrorCode.CONFIGURATION if "reserved" in reply_text else ErrorCode.AUTHENTICATION
    if reply_code == 406 and "max size" in reply_text:
        return ErrorCode.TOO_LARGE  # over the broker's max_message_size
    if reply_code in (405, 406):  # RESOURCE_LOCKED, PRECONDITION_FAILED (inequivalent arg)
        return ErrorCode.CONFIGURATION
    if reply_code in (320, 504, 505, 506):  # the connection went away underneath
        return ErrorCode.CONNECTION
    return ErrorCode.UNKNOWN
