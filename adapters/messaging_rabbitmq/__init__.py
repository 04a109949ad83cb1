"""RabbitMQ for ``messaging``: ``amqp://user:pass@host:5672/vhost`` (and ``amqps://``).

Install with ``pip install "messaging[rabbitmq]"`` (pika). A destination is a fanout
exchange, a group a durable queue bound to it (quorum by default); the key travels as
the routing key, headers in the AMQP headers table, and the body unchanged. The mapping,
what is emulated and at what cost, and the broker settings that matter are in
``docs/adapters/rabbitmq.md``.

Options (URL query, config file or keyword arguments of ``messaging.connect``):
``connect_timeout``, ``request_timeout``, ``heartbeat``, ``queue_type`` (``quorum`` |
``classic``), ``max_priority`` (classic only), ``max_message_bytes``,
``connection_name``, ``ca_file``.

Delivery semantics
------------------
At-least-once with publisher confirms, persistent messages and manual acks; unsettled
deliveries return to their group when the consumer's channel or connection closes, with
``attempt`` + 1. Fan-out across groups, competing consumers within one; no ordering
guarantee, no replay, no per-message visibility timeout; delays and dead letters are
emulated. Details in :mod:`messaging_rabbitmq.driver`.

Errors
------
Native exceptions are classified by one table,
:func:`messaging_rabbitmq._errors.error_code`, and raised by the portable layer as the
matching ``messaging`` error with pika's exception as ``__cause__``.
"""

from messaging_rabbitmq.driver import RabbitDriver, RabbitSubscription

__all__ = ["RabbitDriver", "RabbitSubscription"]
