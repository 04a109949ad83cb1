"""A user-activity stream read by two services, ``analytics`` and ``notifications``, with
replay.

The backend comes from ``$MESSAGING_URL`` (``memory://`` when unset); the code is the same
on every broker:

    python examples/activity_stream.py
    MESSAGING_URL=sqlite:///activity.db python examples/activity_stream.py
    MESSAGING_URL=redis://127.0.0.1:6379/0 python examples/activity_stream.py

Stream semantics: each service is its own consumer group, so each gets every event
(fan-out), while the members of one group would share the work. Analytics counts events
in batches; notifications reacts to purchases with a worker loop. Then analytics
rebuilds its counts from history: ``seek("beginning")`` re-reads the stream where the
backend keeps it (``client.capabilities.replay``), and the example says so when the
backend has no replay (a queue broker forgets a message once it is acked).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid

import messaging

STREAM = "user-activity"
ANALYTICS = "analytics"
NOTIFICATIONS = "notifications"
KINDS = ("page_view", "page_view", "add_to_cart", "page_view", "purchase")


def publish(client: messaging.Client, run: str, count: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = [
        {"run": run, "n": n, "user": f"user-{n % 4}", "kind": KINDS[n % len(KINDS)],
         "page": f"/products/{n % 7}"}
        for n in range(count)
    ]
    # Keyed by user: one user's events stay in order (where ordering is per key).
    client.producer().send_many(STREAM, [
        messaging.Record(event, key=str(event["user"]), headers={"source": "web"})
        for event in events
    ])
    print(f"published {count} activity events to {STREAM!r}", flush=True)
    return events


def ours(message: messaging.Message, run: str) -> dict[str, object] | None:
    """This run's event, or None for one left by an earlier run (acked and skipped)."""
    event = message.value
    return event if isinstance(event, dict) and event.get("run") == run else None


def count_events(consumer: messaging.Consumer, run: str, expected: int,
                 timeout: float = 30.0) -> collections.Counter[str]:
    """Analytics: read in batches, count by kind, ack each batch in one call."""
    counts: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + timeout
    while sum(counts.values()) < expected and time.monotonic() < deadline:
        batch = consumer.receive(max_messages=50, timeout=0.5)
        for message in batch:
            event = ours(message, run)
            if event is not None:
                counts[str(event["kind"])] += 1
        consumer.ack_many(batch)
    return counts


def notify_purchases(client: messaging.Client, run: str, purchases: int,
                     sent: list[str], timeout: float = 30.0) -> None:
    """Notifications: a worker loop that emails each buyer; stops once all are done."""
    done = threading.Event()
    lock = threading.Lock()

    def handle(message: messaging.Message) -> None:
        event = ours(message, run)
        if event is None or event["kind"] != "purchase":
            return  # returning acks: nothing to notify
        with lock:
            sent.append(str(event["user"]))
            print(f"notifications: emailed {event['user']} about their purchase "
                  f"(event {event['n']})", flush=True)
            if len(sent) >= purchases:
                done.set()

    timer = threading.Timer(timeout, done.set)
    timer.start()
    try:
        client.consumer(STREAM, group=NOTIFICATIONS).run(handle, concurrency=2,
                                                         stop_event=done)
    finally:
        timer.cancel()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with messaging.connect() as client:  # $MESSAGING_URL, else memory://
        print(f"backend: {client.url}", flush=True)
        run = uuid.uuid4().hex
        # Both groups exist before the first event, so both receive every event.
        client.admin.create(STREAM, partitions=3, groups=[ANALYTICS, NOTIFICATIONS])
        events = publish(client, run, count=40)
        expected = collections.Counter(str(event["kind"]) for event in events)

        emailed: list[str] = []
        notifications = threading.Thread(
            target=notify_purchases, args=(client, run, expected["purchase"], emailed))
        notifications.start()
        with client.consumer(STREAM, group=ANALYTICS) as analytics:
            live = count_events(analytics, run, len(events))
        notifications.join()
        print(f"analytics (live): {dict(sorted(live.items()))}", flush=True)
        print(f"notifications: {len(emailed)} emails for {expected['purchase']} purchases",
              flush=True)
        ok = live == expected and len(emailed) == expected["purchase"]

        if client.capabilities.replay:
            # A fresh pass over the history: e.g. after fixing a bug in the counting.
            with client.consumer(STREAM, group=ANALYTICS) as analytics:
                analytics.seek("beginning")
                replayed = count_events(analytics, run, len(events))
            print(f"analytics (replayed from the beginning): {dict(sorted(replayed.items()))}",
                  flush=True)
            ok = ok and replayed == live
        else:
            print(f"no replay on {client.url.scheme}:// (capabilities.replay is False): "
                  "acked events are gone, so analytics cannot re-read the stream; keep "
                  "history in a store of your own or use a backend with replay", flush=True)
        print("ok" if ok else "FAILED: the groups did not see every event", flush=True)
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
