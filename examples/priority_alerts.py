"""Priority alerts before regular notifications.

The backend comes from ``$MESSAGING_URL`` (``memory://`` when unset):

    python examples/priority_alerts.py
    MESSAGING_URL=sqlite:///alerts.db python examples/priority_alerts.py
    MESSAGING_URL=amqp://guest:guest@127.0.0.1:5672/ python examples/priority_alerts.py

A backlog of regular notifications is waiting when three alerts arrive. Where the
backend has priorities (``client.capabilities.priority`` levels, 0 when it has none) the
alerts go to the same destination with the highest priority and are received first.
Where it has none, asking for a priority would raise ``UnsupportedFeature``, so the
example uses the portable pattern instead: alerts get their own destination, and the
consumer drains it before each batch of regular notifications. Its first look waits:
a new consumer may need a moment before anything reaches it (on Kafka its first receive
joins the group, and it is assigned partitions in a rebalance); later looks take only
what is there.
"""

from __future__ import annotations

import logging
import uuid

import messaging

NOTIFICATIONS = "notifications"
ALERTS = "notifications.alerts"  # used only where the backend has no priorities
GROUP = "notifier"
# A group of its own for the alerts: on Kafka one group name on two topics is one
# consumer group, and a member of it that is not polling (the notifications consumer,
# while the alerts consumer waits) holds up the other's assignment.
ALERTS_GROUP = "notifier-alerts"
FIRST_LOOK = 10.0  # seconds the first look at the alerts may wait (it returns when any come)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with messaging.connect() as client:  # $MESSAGING_URL, else memory://
        levels = client.capabilities.priority
        print(f"backend: {client.url} ({levels} priority levels)", flush=True)
        run = uuid.uuid4().hex
        client.admin.create(NOTIFICATIONS, groups=[GROUP])
        client.admin.create(ALERTS, groups=[ALERTS_GROUP])
        producer = client.producer()

        regular = [{"run": run, "kind": "notification", "text": f"weekly digest #{n}"}
                   for n in range(12)]
        alerts = [{"run": run, "kind": "alert", "text": text} for text in
                  ("disk 95% full on db-1", "payment provider down", "error rate 12%")]
        producer.send_many(NOTIFICATIONS, regular)
        if levels > 0:
            top = levels - 1
            producer.send_many(NOTIFICATIONS, [messaging.Record(alert, priority=top)
                                               for alert in alerts])
            print(f"sent {len(regular)} notifications, then {len(alerts)} alerts with "
                  f"priority {top}", flush=True)
        else:
            producer.send_many(ALERTS, alerts)
            print(f"no priorities here: sent {len(alerts)} alerts to {ALERTS!r}", flush=True)

        received: list[str] = []
        with client.consumer(NOTIFICATIONS, group=GROUP) as notifications, \
                client.consumer(ALERTS, group=ALERTS_GROUP) as urgent:
            look = FIRST_LOOK
            while len(received) < len(regular) + len(alerts):
                # Without priorities: whatever waits in the alerts destination goes first.
                batch = urgent.receive(max_messages=10, timeout=look) if levels == 0 else []
                look = 0.0
                batch = batch or notifications.receive(max_messages=5, timeout=2.0)
                if not batch:
                    break
                for message in batch:
                    item = message.value
                    if isinstance(item, dict) and item.get("run") == run:
                        received.append(str(item["kind"]))
                        print(f"{item['kind']:>12}: {item['text']}", flush=True)
                    message.ack()

        first = received[:len(alerts)]
        ok = first == ["alert"] * len(alerts) and len(received) == len(regular) + len(alerts)
        print("ok: every alert came before the notifications" if ok
              else f"FAILED: received in this order: {received}", flush=True)
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
