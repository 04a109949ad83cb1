"""messaging: one Producer/Consumer API for Kafka, RabbitMQ, SQS, Redis Streams and a
built-in reference engine, chosen by URL.

    import messaging

    with messaging.connect("memory://") as client:
        client.producer().send("orders", {"id": 7}, key="user-42")
        with client.consumer("orders", group="billing") as consumer:
            for message in consumer.receive(max_messages=10, timeout=1.0):
                message.ack()
"""

from messaging.admin import Admin
from messaging.capabilities import Capabilities
from messaging.client import Client, connect
from messaging.codecs import Codec, DefaultCodec, JsonCodec
from messaging.consumer import Consumer
from messaging.errors import (
    AlreadySettled,
    AuthenticationFailed,
    ConfigurationError,
    ConnectionFailed,
    DestinationNotFound,
    MessageTooLarge,
    MessagingError,
    SerializationError,
    Timeout,
    UnsupportedFeature,
)
from messaging.message import Message
from messaging.producer import Producer, Record
from messaging.retry import Retry

__all__ = [
    "Admin",
    "AlreadySettled",
    "AuthenticationFailed",
    "Capabilities",
    "Client",
    "Codec",
    "ConfigurationError",
    "ConnectionFailed",
    "Consumer",
    "DefaultCodec",
    "DestinationNotFound",
    "JsonCodec",
    "Message",
    "MessageTooLarge",
    "MessagingError",
    "Producer",
    "Record",
    "Retry",
    "SerializationError",
    "Timeout",
    "UnsupportedFeature",
    "connect",
]
__version__ = "0.1.0"
