"""The adapter's options, checked once, and the pika connection parameters they give."""

from __future__ import annotations

import dataclasses
import math
import ssl
import urllib.parse
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import pika

from messaging.capabilities import Capabilities
from messaging.errors import ConfigurationError
from messaging.urls import BrokerURL

QueueType = Literal["quorum", "classic"]

MAX_DELAY = 14 * 24 * 3600.0
"""Longest delay: a delay queue's ``x-expires`` (twice the TTL plus a minute) must stay
within RabbitMQ's 32-bit millisecond limit."""
DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024
"""RabbitMQ 3.10's default ``max_message_size``; the broker refuses larger bodies."""
MAX_PRIORITY = 255
"""AMQP's priority property is one octet (RabbitMQ advises at most 10 levels)."""

OPTION_TYPES: Mapping[str, type] = MappingProxyType({
    "connect_timeout": float,
    "request_timeout": float,
    "heartbeat": int,
    "queue_type": str,
    "max_priority": int,
    "max_message_bytes": int,
    "connection_name": str,
    "ca_file": str,
})


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``connect()`` options and the URL ask of the adapter."""

    connect_timeout: float = 10.0
    """Seconds to open the connection (TCP, TLS and the AMQP handshake together)."""
    request_timeout: float = 30.0
    """Seconds to wait for the broker's answer to one call (a confirm, a declare)."""
    heartbeat: int | None = None
    """AMQP heartbeat in seconds (0 turns it off); None: the broker's (60 s)."""
    queue_type: QueueType = "quorum"
    """Type of the group queues: ``quorum`` (replicated; the broker counts deliveries;
    no priority in RabbitMQ 3.x) or ``classic`` (priority with ``max_priority``; a crash
    redelivery counts as one more attempt however many there were)."""
    max_priority: int = 0
    """``x-max-priority`` of classic group queues; priorities 0..max_priority."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest body plus headers to accept; keep it at most the broker's
    ``max_message_size``."""
    connection_name: str | None = None
    """Shown for the connection in the management UI and ``rabbitmqctl``."""
    ca_file: str | None = None
    """CA bundle for ``amqps://`` (default: the system's)."""

    @classmethod
    def parse(cls, options: Mapping[str, object]) -> Settings:
        unknown = sorted(set(options) - set(OPTION_TYPES))
        if unknown:
            raise ConfigurationError(
                f"unknown RabbitMQ options {unknown}; known: {sorted(OPTION_TYPES)}")
        given = {name: value for name, value in options.items() if value is not None}
        for name in ("connect_timeout", "request_timeout"):
            if name in given:
                given[name] = _positive_number(name, given[name])
        for name, least in (("heartbeat", 0), ("max_priority", 0), ("max_message_bytes", 1)):
            if name in given:
                given[name] = _integer(name, given[name], least)
        settings = cls(**given)  # type: ignore[arg-type]
        if settings.queue_type not in ("quorum", "classic"):
            raise ConfigurationError(
                f"queue_type must be 'quorum' or 'classic', got {settings.queue_type!r}")
        if settings.max_priority > MAX_PRIORITY:
            raise ConfigurationError(f"max_priority is at most {MAX_PRIORITY}")
        if settings.max_priority and settings.queue_type != "classic":
            raise ConfigurationError(
                "max_priority needs queue_type='classic': RabbitMQ 3.x quorum queues have "
                "no message priority")
        return settings

    def queue_arguments(self) -> dict[str, object]:
        """``queue.declare`` arguments of a group queue."""
        if self.queue_type == "quorum":
            return {"x-queue-type": "quorum"}
        arguments: dict[str, object] = {"x-queue-type": "classic"}
        if self.max_priority:
            arguments["x-max-priority"] = self.max_priority
        return arguments

    def capabilities(self) -> Capabilities:
        """What the broker objects these settings declare can honestly promise (see the
        adapter's mapping document for the reasons behind each flag)."""
        return Capabilities(
            ordering="none",
            fan_out=True,
            replay=False,
            max_delay=MAX_DELAY,
            priority=self.max_priority + 1 if self.max_priority else 0,
            dead_letter="emulated",
            dedup=False,
            max_message_bytes=self.max_message_bytes,
            max_headers=None,
            visibility_timeout=False,
            extend=False,
            durable=True,
            dedup_window=None,
            max_batch=1000,
            emulated=frozenset({"delay", "dead_letter"}),
        )

    def connection_parameters(self, url: BrokerURL) -> list[pika.ConnectionParameters]:
        """One ``ConnectionParameters`` per host of the URL, tried in order."""
        if url.scheme not in ("amqp", "amqps"):
            raise ConfigurationError(f"the RabbitMQ adapter serves amqp:// and amqps://, "
                                     f"not {url.scheme}://")
        tls = url.scheme == "amqps"
        path = url.path[1:] if url.path.startswith("/") else url.path
        if "/" in path:
            raise ConfigurationError(
                f"{url.redacted}: the path is the virtual host; quote a '/' in it as %2F")
        virtual_host = urllib.parse.unquote(path) if path else "/"
        credentials = pika.PlainCredentials(
            url.username if url.username is not None else "guest",
            url.password if url.password is not None else "guest")
        hosts = url.hosts or (("127.0.0.1", None),)
        client_properties = (
            {"connection_name": self.connection_name} if self.connection_name else None)
        parameters = []
        for host, port in hosts:
            name = host.strip("[]")
            extra: dict[str, object] = {}
            if self.heartbeat is not None:
                extra["heartbeat"] = self.heartbeat
            if tls:
                context = ssl.create_default_context(cafile=self.ca_file)
                extra["ssl_options"] = pika.SSLOptions(context, server_hostname=name)
            parameters.append(pika.ConnectionParameters(
                host=name,
                port=port or (5671 if tls else 5672),
                virtual_host=virtual_host,
                credentials=credentials,
                connection_attempts=1,  # the adapter never retries on its own
                socket_timeout=self.connect_timeout,
                stack_timeout=self.connect_timeout,
                blocked_connection_timeout=self.request_timeout,
                client_properties=client_properties,
                **extra,
            ))
        return parameters


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"option {name!r} must be a number > 0, got {value!r}")
    return float(value)


def _integer(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(f"option {name!r} must be an int >= {least}, got {value!r}")
    return value
