"""messaging's Kafka adapter (``kafka://host:9092[,host:9092]``), built on confluent-kafka.

Install with ``pip install "messaging[kafka]"``; the ``kafka`` URL scheme finds
:class:`KafkaDriver` through the ``messaging.adapters`` entry point. The mapping onto
topics, consumer groups, keys, headers and committed offsets, and what is emulated, is
documented in :mod:`messaging_kafka.driver` and ``docs/adapters/kafka.md``.

Delivery semantics
------------------
At-least-once, in order per partition (so per key). Sends wait for ``acks=all``
delivery reports. The committed offset of a group is the contiguous acked prefix of each
partition; acks above a gap and delivery counts travel in the commit metadata, so the
next owner of a partition neither repeats acked messages nor loses count of attempts.
Delay is emulated (a header consumers honour); there is no visibility timeout, no
priority and no dedup.

Errors
------
Native ``confluent_kafka`` exceptions are classified by one table
(:func:`messaging_kafka._errors.error_code`) and raised by the portable layer as
``messaging`` errors with the native one as ``__cause__``.
"""

from messaging_kafka.driver import KafkaDriver

__all__ = ["KafkaDriver"]
