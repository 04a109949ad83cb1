"""The Redis Streams adapter: ``redis://host:6379/0`` (``rediss://`` for TLS).

Built on redis-py; needs Redis 7.0 or later. A destination is a stream of the same name,
a group is a consumer group of that stream, and each ``consumer()`` is one consumer of
the group. The full mapping, with every key and setting, is in docs/adapters/redis.md;
why redelivery works the way it does is in
docs/decisions/0101-redis-visibility-in-the-pending-entries-list.md.

URL and options: credentials in the URL (``redis://user:password@host:6379/0``); the
database number is the path. ``default_visibility_timeout`` (seconds, 30: for consumers
that set none), ``reclaim_interval`` (seconds, 1: how often a member looks for entries to
reclaim), ``socket_timeout`` (seconds, 10), ``max_message_bytes`` (512 MiB, Redis's
``proto-max-bulk-len``), ``maxlen`` or ``retention`` (seconds) to trim the stream on every
send, ``dedup_window`` (seconds, 300), and ``ssl_*`` for ``rediss://``.

Delivery semantics
------------------
* At-least-once. ``send`` returns once the server added the entry (pipelined XADD for a
  batch); it survives a server restart where the server keeps an append-only file
  (``capabilities.durable`` says whether it does, read from INFO when connecting).
* Each group gets every entry added after the group was created (XGROUP CREATE at ``$``:
  by ``admin.create(groups=...)`` or the first ``consumer()``); its members compete for
  entries (XREADGROUP). ``seek`` moves the whole group (XGROUP SETID): replay is native.
* A received entry stays in the group's pending-entries list until acked (XACK, one call
  per batch). It is delivered again, with ``attempt`` (the entry's delivery count) one
  higher, once it has been idle for its holder's visibility timeout, or when nacked
  (after ``delay``), or when ``extend``'s time runs out. Members reclaim such entries
  (XPENDING + XCLAIM in one script) inside ``receive`` at most every
  ``reclaim_interval``: redelivery happens while some member of the group receives.
* Read-ahead: after a receive that came back full, the next ack reads the next batch in
  its round trip (at most ``prefetch`` held in all), for the next receive to hand out.
  Those entries are this member's in Redis from the read on: ``close``, ``seek`` and a
  wait of over a second give them back with their delivery count restored (decision
  0107); a member that crashes leaves them to be reclaimed with ``attempt`` 2.
* Delay: a delayed message waits in a sorted set and is moved into the stream by the
  first member of any group that receives after it is due; its id is carried in the
  ``message-id`` field. ``dedup_id``: a repeat within ``dedup_window`` is dropped and
  ``send`` returns the first one's id. No priority; no per-key ordering (see the
  decision record). Dead letters are emulated by the portable layer.
* Wire: the body is the field ``body``, the key the field ``key``, and each header a field
  of its own; nothing else, so plain redis-py programs interoperate both ways.

Errors
------
``error_code`` maps redis-py's transport errors (refused, lost or unanswered connection,
a server that is loading or read-only: ``ConnectionFailed``), refused credentials or ACL
permissions (``AuthenticationFailed``), a missing stream or group (``NOGROUP``:
``DestinationNotFound``), a key that is not a stream (``WRONGTYPE``:
``ConfigurationError``) and the rest in one table (:mod:`messaging_redis._errors`).
redis-py's own retries are off: nothing here retries. A header named ``body``, ``key`` or
``message-id`` is refused before anything is sent.
"""

from messaging_redis._driver import RedisDriver, RedisSubscription

__all__ = ["RedisDriver", "RedisSubscription"]
