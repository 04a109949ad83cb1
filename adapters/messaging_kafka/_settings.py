"""The adapter's options, checked once, and the librdkafka configurations they give.

Options (URL query, config file, environment or keyword arguments of ``connect``):

``connect_timeout`` (s, 10)
    ``open`` fails with ``ConnectionFailed`` when no broker answered within it.
``request_timeout`` (s, 30)
    Longest wait for an admin call, a commit, a delivery report (``message.timeout.ms``).
``session_timeout`` (s, 10)
    ``session.timeout.ms`` of consumers: how long a dead member keeps its partitions.
    The broker bounds it (``group.min.session.timeout.ms``, 6 s by default).
``revoke_wait`` (s, 10)
    How long a rebalance that takes partitions away waits for ``run()``'s handlers
    still running on them, so that their acks go with the hand-over. A handler still
    running after it is delivered again to the partition's next owner; 0 never waits.
``max_message_bytes`` (1,000,000)
    Largest body plus headers accepted (``Capabilities.max_message_bytes``). Keep it
    below the broker's ``message.max.bytes`` / topic ``max.message.bytes`` minus the
    record framing (key, timestamps: a few hundred bytes).
``linger`` (s, 0.005)
    ``linger.ms``: how long the producer waits to fill a batch.
``compression`` (``none``)
    ``compression.type``: none, gzip, snappy, lz4 or zstd.
``partitioner`` (``consistent_random``)
    librdkafka's default; ``murmur2_random`` puts a key on the partition the Java
    client's default partitioner chooses.
``security_protocol`` / ``sasl_mechanism`` (``PLAIN``) / ``ca_file``
    A user name in the URL (``kafka://user:pass@host:9092``) turns SASL on
    (``SASL_SSL`` when ``ca_file`` is given, else ``SASL_PLAINTEXT``).
``client_id`` (``messaging``)
``kafka_config`` (mapping)
    Further librdkafka properties for every client (e.g. ``ssl.certificate.location``,
    ``acks``, ``enable.idempotence``). Properties the adapter's semantics rest on are
    refused (see ``OWNED``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from messaging.errors import ConfigurationError
from messaging.urls import BrokerURL

DEFAULT_PORT = 9092
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
FRAMING_MARGIN = 64 * 1024
"""Room the producer's ``message.max.bytes`` leaves above ``max_message_bytes`` for the
key, the record framing and a delay header, so the portable size check stays the one
that refuses a message."""
METADATA_REFRESH = 5.0
"""Seconds between a consumer's metadata refreshes: how soon it notices its topic was
deleted (or grew partitions). One small request each; ``kafka_config`` may change it."""
HEARTBEAT = 1.0
"""Seconds between a consumer's heartbeats at most (a third of ``session_timeout`` when
that is shorter): how soon members take part in a rebalance."""

OPTION_TYPES: Mapping[str, type] = MappingProxyType({
    "connect_timeout": float,
    "request_timeout": float,
    "session_timeout": float,
    "revoke_wait": float,
    "max_message_bytes": int,
    "linger": float,
    "compression": str,
    "partitioner": str,
    "security_protocol": str,
    "sasl_mechanism": str,
    "ca_file": str,
    "client_id": str,
    "kafka_config": object,
})

OWNED = frozenset({
    "bootstrap.servers", "metadata.broker.list", "group.id", "group.protocol",
    "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset",
    "partition.assignment.strategy", "enable.partition.eof", "allow.auto.create.topics",
    "sasl.username", "sasl.password", "logger", "error_cb", "on_commit", "on_delivery",
    "message.max.bytes",
})
"""librdkafka properties ``kafka_config`` may not set: the adapter's commits, group
membership and size checks depend on them (and credentials belong in the URL)."""

_COMPRESSION = frozenset({"none", "gzip", "snappy", "lz4", "zstd"})
_PARTITIONERS = frozenset({"random", "consistent", "consistent_random", "murmur2",
                           "murmur2_random", "fnv1a", "fnv1a_random"})
_PROTOCOLS = frozenset({"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"})
_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"})

ErrorCallback = Callable[[Any], None]
Config = dict[str, object]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What ``connect()`` options and the URL ask of the adapter (see the module doc)."""

    bootstrap: str
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    session_timeout: float = 10.0
    revoke_wait: float = 10.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    linger: float = 0.005
    compression: str = "none"
    partitioner: str = "consistent_random"
    security_protocol: str | None = None
    sasl_mechanism: str = "PLAIN"
    ca_file: str | None = None
    client_id: str = "messaging"
    kafka_config: Mapping[str, object] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, url: BrokerURL, options: Mapping[str, object]) -> Settings:
        unknown = sorted(set(options) - set(OPTION_TYPES))
        if unknown:
            raise ConfigurationError(
                f"unknown Kafka options {unknown}; known: {sorted(OPTION_TYPES)}")
        if not url.hosts:
            raise ConfigurationError(f"{url.redacted}: name at least one broker, "
                                     "as kafka://host:9092[,host2:9092]")
        if url.path not in ("", "/"):
            raise ConfigurationError(f"{url.redacted}: a Kafka URL has no path")
        given = {name: value for name, value in options.items() if value is not None}
        for name in ("connect_timeout", "request_timeout", "session_timeout"):
            if name in given:
                given[name] = _number(name, given[name], positive=True)
        for name in ("linger", "revoke_wait"):  # 0: no wait
            if name in given:
                given[name] = _number(name, given[name], positive=False)
        if "max_message_bytes" in given:
            value = given["max_message_bytes"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"option 'max_message_bytes' must be an int >= 1, got {value!r}")
        _choice(given, "compression", _COMPRESSION, str.lower)
        _choice(given, "partitioner", _PARTITIONERS, str.lower)
        _choice(given, "security_protocol", _PROTOCOLS, str.lower)
        _choice(given, "sasl_mechanism", _MECHANISMS, str.upper)
        if "kafka_config" in given:
            given["kafka_config"] = _extra_config(given["kafka_config"])
        bootstrap = ",".join(f"{host}:{port or DEFAULT_PORT}" for host, port in url.hosts)
        return cls(bootstrap=bootstrap, username=url.username, password=url.password,
                   **given)  # type: ignore[arg-type]

    # -- librdkafka configurations ------------------------------------------------------
    def common(self, logger: logging.Logger, error_cb: ErrorCallback | None) -> Config:
        config: Config = {
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id,
            "socket.connection.setup.timeout.ms": _ms(self.connect_timeout),
            "logger": logger,
        }
        if error_cb is not None:
            config["error_cb"] = error_cb
        protocol = self.security_protocol
        if protocol is None:
            sasl = self.username is not None
            tls = self.ca_file is not None
            protocol = {(False, False): "plaintext", (False, True): "ssl",
                        (True, False): "sasl_plaintext", (True, True): "sasl_ssl"}[(sasl, tls)]
        config["security.protocol"] = protocol
        if protocol.startswith("sasl"):
            config["sasl.mechanism"] = self.sasl_mechanism
            if self.username is not None:
                config["sasl.username"] = self.username
                config["sasl.password"] = self.password or ""
        if self.ca_file is not None:
            config["ssl.ca.location"] = self.ca_file
        config.update(self.kafka_config)
        return config

    def producer(self, logger: logging.Logger, error_cb: ErrorCallback | None) -> Config:
        config: Config = {
            # The durability bar: every in-sync replica has the record, and the
            # client's own resends cannot duplicate or reorder it.
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": self.linger * 1000.0,
            "compression.type": self.compression,
            "partitioner": self.partitioner,
            "message.max.bytes": self.max_message_bytes + FRAMING_MARGIN,
            "message.timeout.ms": _ms(self.request_timeout),
            # Sending to a missing topic must fail (DestinationNotFound), not create it
            # with the broker's defaults behind the user's back.
            "allow.auto.create.topics": False,
        }
        # ``common`` last: ``kafka_config`` may override the defaults above.
        return {**config, **self.common(logger, error_cb)}

    def consumer(self, group: str, logger: logging.Logger, error_cb: ErrorCallback | None,
                 on_commit: Callable[..., None]) -> Config:
        """The consumer of one member. ``prefetch`` is not mapped: librdkafka sizes its
        own fetch queue per partition (``queued.min.messages``, settable through
        ``kafka_config``), and a small one makes it back off a whole second
        (``fetch.queue.backoff.ms``) after each fetch that fills it."""
        config: Config = {
            "group.id": group,
            # The adapter commits itself: only the contiguous acked prefix, with the
            # group's delivery record in the commit metadata.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A partition without a committed offset is one added after the group
            # existed: everything in it was sent after, so it is read from the start.
            "auto.offset.reset": "earliest",
            # Only partitions that move are revoked: members keep working through a
            # rebalance instead of giving everything back.
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": _ms(self.session_timeout),
            # Members learn of a rebalance from a heartbeat's answer: at librdkafka's
            # 3 s, a member joining or leaving waited that long for the others to rejoin
            # (twice, the two halves of a cooperative rebalance) before partitions moved.
            "heartbeat.interval.ms": min(_ms(HEARTBEAT), max(100, _ms(self.session_timeout) // 3)),
            "enable.partition.eof": False,
            "allow.auto.create.topics": False,
            # A topic deleted under the member shows only in fresh metadata (then its
            # partitions are lost and the client reports it unknown): at the default
            # five minutes, receive would return nothing for that long instead of
            # DestinationNotFound, as every other backend raises at once.
            "topic.metadata.refresh.interval.ms": _ms(METADATA_REFRESH),
            "on_commit": on_commit,
        }
        return {**config, **self.common(logger, error_cb)}

    def admin(self, logger: logging.Logger, error_cb: ErrorCallback | None) -> Config:
        return {**self.common(logger, error_cb), "allow.auto.create.topics": False}


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _number(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigurationError(f"option {name!r} must be a number {bound}, got {value!r}")
    return float(value)


def _choice(given: dict[str, object], name: str, allowed: frozenset[str],
            normal: Callable[[str], str]) -> None:
    if name not in given:
        return
    value = given[name]
    if not isinstance(value, str) or normal(value) not in allowed:
        raise ConfigurationError(
            f"option {name!r} must be one of {sorted(allowed)}, got {value!r}")
    given[name] = normal(value)


def _extra_config(value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "option 'kafka_config' must be a mapping of librdkafka properties "
            f"(a TOML table or a dict), got {type(value).__name__}")
    refused = sorted(str(key) for key in value if key in OWNED)
    if refused:
        raise ConfigurationError(
            f"kafka_config may not set {refused}: the adapter relies on them "
            "(credentials go in the URL)")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str | int | float | bool):
            raise ConfigurationError(
                f"kafka_config: {key!r} must map a property name to a str, int, float "
                f"or bool, got {type(item).__name__}")
    return MappingProxyType(dict(value))
