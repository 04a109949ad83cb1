"""The one table that says what a native SQS/SNS error means (``SqsDriver.error_code``).

boto3 raises three kinds of errors: botocore exceptions for transport, credential and
parameter problems (classified by class), ``ClientError`` for a refusal by the service
(classified by its ``Error.Code``), and, inside a batch, per-entry failures, which the
driver turns into :class:`BatchEntryError` carrying the same codes. Limits of SQS that the
portable checks do not cover (attribute names, empty header values, key length) are
refused by the driver before anything is sent, as :class:`SqsRefused` with its code.
"""

from __future__ import annotations

from botocore import exceptions as botocore_errors

from messaging.errors import ErrorCode


class SqsRefused(Exception):
    """The driver refuses a call before sending anything (an SQS limit or a bad option);
    ``code`` says which ``messaging`` error it becomes."""

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code


class BatchEntryError(Exception):
    """One entry of a batch call failed (``Failed`` in the response); the others did not."""

    def __init__(self, code: str, text: str, sender_fault: bool) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.sender_fault = sender_fault


# Service error codes, as ClientError's Error.Code or a batch entry's Code.
_CODES: dict[str, ErrorCode] = {
    # a queue or topic that does not exist
    "AWS.SimpleQueueService.NonExistentQueue": ErrorCode.NOT_FOUND,
    "QueueDoesNotExist": ErrorCode.NOT_FOUND,
    "NotFound": ErrorCode.NOT_FOUND,
    "NotFoundException": ErrorCode.NOT_FOUND,
    # credentials refused or not allowed
    "InvalidClientTokenId": ErrorCode.AUTHENTICATION,
    "UnrecognizedClientException": ErrorCode.AUTHENTICATION,
    "SignatureDoesNotMatch": ErrorCode.AUTHENTICATION,
    "IncompleteSignature": ErrorCode.AUTHENTICATION,
    "MissingAuthenticationToken": ErrorCode.AUTHENTICATION,
    "InvalidSecurity": ErrorCode.AUTHENTICATION,
    "ExpiredToken": ErrorCode.AUTHENTICATION,
    "AccessDenied": ErrorCode.AUTHENTICATION,
    "AccessDeniedException": ErrorCode.AUTHENTICATION,
    "AuthorizationError": ErrorCode.AUTHENTICATION,
    "AuthFailure": ErrorCode.AUTHENTICATION,
    "KMSAccessDenied": ErrorCode.AUTHENTICATION,
    # too big for the service (the portable checks should have caught it first)
    "AWS.SimpleQueueService.BatchRequestTooLong": ErrorCode.TOO_LARGE,
    "BatchRequestTooLong": ErrorCode.TOO_LARGE,
    # the service is unavailable or refuses work for now: the worker's outage pause is
    # the right reaction, so these read as a connection problem
    "ServiceUnavailable": ErrorCode.CONNECTION,
    "InternalError": ErrorCode.CONNECTION,
    "InternalFailure": ErrorCode.CONNECTION,
    "Throttling": ErrorCode.CONNECTION,
    "ThrottlingException": ErrorCode.CONNECTION,
    "ThrottledException": ErrorCode.CONNECTION,
    "RequestThrottled": ErrorCode.CONNECTION,
    "AWS.SimpleQueueService.RequestThrottled": ErrorCode.CONNECTION,
    "KMSThrottled": ErrorCode.CONNECTION,
    "OverLimit": ErrorCode.CONNECTION,
    "RequestTimeout": ErrorCode.TIMEOUT,
    # the call itself was malformed or conflicts with what exists
    "InvalidParameterValue": ErrorCode.CONFIGURATION,
    "InvalidParameterValueException": ErrorCode.CONFIGURATION,
    "InvalidParameter": ErrorCode.CONFIGURATION,
    "InvalidAttributeName": ErrorCode.CONFIGURATION,
    "InvalidAttributeValue": ErrorCode.CONFIGURATION,
    "InvalidMessageContents": ErrorCode.CONFIGURATION,
    "MissingParameter": ErrorCode.CONFIGURATION,
    "ValidationError": ErrorCode.CONFIGURATION,
    "QueueAlreadyExists": ErrorCode.CONFIGURATION,
    "QueueNameExists": ErrorCode.CONFIGURATION,
    "AWS.SimpleQueueService.QueueDeletedRecently": ErrorCode.CONFIGURATION,
    "QueueDeletedRecently": ErrorCode.CONFIGURATION,
    "AWS.SimpleQueueService.UnsupportedOperation": ErrorCode.UNSUPPORTED,
    "UnsupportedOperation": ErrorCode.UNSUPPORTED,
}

# Transport and client-side failures, by class (first match wins: subclasses first).
_CLASSES: tuple[tuple[type[BaseException], ErrorCode], ...] = (
    (botocore_errors.NoCredentialsError, ErrorCode.AUTHENTICATION),
    (botocore_errors.PartialCredentialsError, ErrorCode.AUTHENTICATION),
    (botocore_errors.NoAuthTokenError, ErrorCode.AUTHENTICATION),
    (botocore_errors.ProfileNotFound, ErrorCode.CONFIGURATION),
    (botocore_errors.NoRegionError, ErrorCode.CONFIGURATION),
    (botocore_errors.InvalidRegionError, ErrorCode.CONFIGURATION),
    (botocore_errors.ParamValidationError, ErrorCode.CONFIGURATION),
    # no answer in time: the connection is as good as lost (the worker pauses and carries
    # on; a send's outcome is unknown, as after a lost connection)
    (botocore_errors.ReadTimeoutError, ErrorCode.CONNECTION),
    (botocore_errors.ConnectTimeoutError, ErrorCode.CONNECTION),
    (botocore_errors.EndpointConnectionError, ErrorCode.CONNECTION),
    (botocore_errors.ConnectionClosedError, ErrorCode.CONNECTION),
    (botocore_errors.ProxyConnectionError, ErrorCode.CONNECTION),
    (botocore_errors.SSLError, ErrorCode.CONNECTION),
    (botocore_errors.HTTPClientError, ErrorCode.CONNECTION),
    (ConnectionError, ErrorCode.CONNECTION),
)


def service_code(error: BaseException) -> str | None:
    """The service's error code of a ClientError or a batch entry failure, else None."""
    if isinstance(error, BatchEntryError):
        return error.code
    if isinstance(error, botocore_errors.ClientError):
        return str(error.response.get("Error", {}).get("Code", "")) or None
    return None


def classify(error: BaseException) -> ErrorCode:
    """What ``error`` means for the portable layer. Depends on nothing but ``error``."""
    if isinstance(error, SqsRefused):
        return error.code
    code = service_code(error)
    if code is not None:
        return _CODES.get(code, ErrorCode.UNKNOWN)
    for error_class, meaning in _CLASSES:
        if isinstance(error, error_class):
            return meaning
    return ErrorCode.UNKNOWN


# Per-entry failures of DeleteMessageBatch / ChangeMessageVisibilityBatch that mean "this
# receipt is no longer yours" (the visibility timeout passed, or the message was already
# deleted through another receipt). The delivery is then not this consumer's to settle:
# like an expired lease, settling it is moot, not an error.
_STALE_RECEIPT_CODES = frozenset({
    "ReceiptHandleIsInvalid",
    "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
})


def is_stale_receipt(code: str, text: str) -> bool:
    if code in _STALE_RECEIPT_CODES:
        return True
    # SQS (and LocalStack) answer a receipt of a deleted message with a parameter error
    # that names the receipt handle.
    return code.startswith("InvalidParameterValue") and "ReceiptHandle" in text
