"""The SQS adapter: ``sqs://?region=us-east-1&endpoint_url=http://127.0.0.1:4566``.

Built on boto3. A destination is an SNS topic, a group is an SQS queue subscribed to it
with raw message delivery (``orders`` -> topic ``orders``, group ``billing`` -> queue
``orders--billing``; ``.fifo`` on both for a FIFO destination, ``create(dest,
fifo=True)``). The full mapping, with every AWS resource and setting, is in
docs/adapters/sqs.md; why the adapter sends to the group queues itself is in
docs/decisions/0102-sqs-direct-send-with-sns-group-registry.md.

URL and options: ``region``, ``endpoint_url`` (LocalStack, ...), ``profile``,
``account_id`` (else learnt from existing ARNs), ``fifo`` (what ``create`` and the
auto-create make by default), ``group_cache_ttl`` (seconds a sender reuses a
destination's list of groups; default 1), ``request_concurrency`` (requests of one
call in flight at once; default 8, see ``_requests``). Credentials:
``sqs://KEY:SECRET@?region=...`` or the usual AWS chain (environment, profile, instance
role).

Delivery semantics
------------------
* At-least-once. ``send`` returns once every group queue of the destination accepted
  the message (SendMessageBatch, 10 messages and 256 KiB per call); a receive makes a
  message invisible for the consumer's ``visibility_timeout`` (rounded up to whole
  seconds; the queue's 30 s when none is given). Unacked, it is received again and
  ``attempt`` (SQS's ApproximateReceiveCount) is one higher.
* Groups compete inside (one queue), fan out across (one queue each). The adapter sends
  to each group queue the topic's subscriptions list: fan-out is the adapter's
  (``emulated``), not atomic across groups; a message published to the topic by a plain
  client reaches the same queues through SNS. A new group's first ``consumer()`` /
  ``create(groups=...)`` returns after ``group_cache_ttl`` so that senders elsewhere see
  it (contract 11).
* Ack: DeleteMessageBatch. Nack: ChangeMessageVisibilityBatch to 0, or to ``delay``
  (rounded up). ``extend``: ChangeMessageVisibilityBatch. A settlement of a receipt that
  is no longer this consumer's (its visibility passed, or the message is gone) is
  ignored, like an expired lease.
* Delay: DelaySeconds up to 900 s on standard destinations; FIFO queues have no
  per-message delay (``max_delay`` None there). Ordering per key and ``dedup_id`` on FIFO
  destinations only (MessageGroupId, MessageDeduplicationId; 5 minute window).
* Dead letters: ``emulated`` (the portable layer sends the letter, then acks).
  ``create(dest, groups=[...], dead_letter="dlq", max_receive_count=n)`` adds SQS's own
  redrive policy as a backstop. No priority, no replay.
* Wire: the body is the SQS body, headers are ``String`` message attributes (at most 7:
  SQS carries 10 and the adapter may need 3, ``message-id``, ``message-key`` and
  ``content-transfer-encoding``). A body that is not SQS text travels base64; one whose
  ``content-type`` is ``application/octet-stream`` always does.

Errors
------
``error_code`` maps botocore's transport errors (connection refused, lost or unanswered
-> ``ConnectionFailed``), missing or refused credentials
(``AuthenticationFailed``), unknown queues and topics (``DestinationNotFound``), throttling
and service errors (``ConnectionFailed``: the worker pauses) and bad parameters
(``ConfigurationError``) in one table (:mod:`messaging_sqs._errors`). What SQS would
refuse and the portable checks do not see (an attribute name SQS does not allow, an empty
header value, a key over 128 bytes) is refused before anything is sent. A batch entry
that fails is reported for that message only. botocore's own retries are off: nothing
here retries.
"""

from messaging_sqs._driver import SqsDriver, SqsSubscription

__all__ = ["SqsDriver", "SqsSubscription"]
