"""Order processing: a producer, a pool of workers with retries, and a dead-letter queue.

The backend comes from ``$MESSAGING_URL`` (``memory://`` when unset); the code is the same
on every broker:

    python examples/order_workers.py
    MESSAGING_URL=sqlite:///orders.db python examples/order_workers.py
    MESSAGING_URL=kafka://127.0.0.1:9092 python examples/order_workers.py
    MESSAGING_URL=amqp://guest:guest@127.0.0.1:5672/ python examples/order_workers.py

With no argument it does everything in one process and exits when every order has been
settled: processed, or (the one order for a product that does not exist) dead-lettered
to ``orders.dlq`` after three attempts. On a backend shared by processes the roles run
apart; start as many workers as you like, they compete for the orders:

    MESSAGING_URL=sqlite:///orders.db python examples/order_workers.py worker   # Ctrl-C stops
    MESSAGING_URL=sqlite:///orders.db python examples/order_workers.py produce --orders 50
    MESSAGING_URL=sqlite:///orders.db python examples/order_workers.py dead-letters

A worker stops gracefully on SIGTERM or Ctrl-C: running orders finish and are acked,
orders received but not started go back to the queue.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
import uuid

import messaging

ORDERS = "orders"
DEAD_LETTERS = "orders.dlq"
WORKERS = "order-workers"  # the consumer group every worker joins
AUDIT = "order-audit"  # a group that reads the dead-letter queue

RETRY = messaging.Retry(max_attempts=3, backoff=0.2)
CATALOG = {"BK-101": 12.50, "MG-220": 7.90, "TS-330": 19.00, "PN-440": 3.20}
_print_lock = threading.Lock()


def say(text: str) -> None:
    """print() from several handler threads, one whole line at a time."""
    with _print_lock:
        print(text, flush=True)


class UnknownProduct(Exception):
    """Retrying will not help; after max_attempts the order goes to the dead letters."""


def handle(message: messaging.Message) -> None:
    """Process one order. Returning acks it; raising retries it with backoff and, after
    ``RETRY.max_attempts`` deliveries, moves it to ``orders.dlq`` with the error."""
    order = message.value
    if not isinstance(order, dict):
        raise UnknownProduct(f"message {message.id} is not an order: {order!r}")
    price = CATALOG.get(order["sku"])
    if price is None:
        say(f"order {order['id']:>3}: attempt {message.attempt} failed: "
            f"no product {order['sku']!r}")
        raise UnknownProduct(f"order {order['id']}: no product {order['sku']!r}")
    time.sleep(0.01)  # charge the card, reserve the stock...
    say(f"order {order['id']:>3}: charged {order['quantity'] * price:7.2f} to "
        f"{order['customer']} (attempt {message.attempt})")


def produce(client: messaging.Client, count: int, run: str) -> list[int]:
    """Send ``count`` orders; every 7th names a product that does not exist. Returns the
    ids of those poison orders."""
    skus = list(CATALOG)
    records, poison = [], []
    for number in range(1, count + 1):
        sku = "XX-000" if number % 7 == 0 else skus[number % len(skus)]
        if sku not in CATALOG:
            poison.append(number)
        customer = f"user-{number % 5}"
        order = {"id": number, "run": run, "customer": customer, "sku": sku,
                 "quantity": number % 3 + 1}
        # The key keeps one customer's orders in order (where ordering is per key).
        records.append(messaging.Record(order, key=customer))
    client.producer().send_many(ORDERS, records)
    print(f"sent {count} orders to {ORDERS!r}", flush=True)
    return poison


def work(client: messaging.Client, stop: threading.Event | None = None) -> None:
    """A pool of four workers; returns on ``stop``, SIGTERM or SIGINT."""
    client.consumer(ORDERS, group=WORKERS).run(
        handle, concurrency=4, retry=RETRY, dead_letter=DEAD_LETTERS, stop_event=stop)


def read_dead_letters(client: messaging.Client, run: str | None = None,
                      timeout: float = 0.5) -> list[int]:
    """Print (and ack, as the audit group) what is in ``orders.dlq``; return order ids."""
    found = []
    with client.consumer(DEAD_LETTERS, group=AUDIT) as audit:
        while batch := audit.receive(max_messages=100, timeout=timeout):
            for letter in batch:
                order = letter.value
                if not isinstance(order, dict) or (run is not None and order.get("run") != run):
                    continue
                found.append(int(order["id"]))
                print(f"dead letter: order {order['id']} after "
                      f"{letter.headers.get('x-attempts')} attempts, reason "
                      f"{letter.headers.get('x-dead-letter-reason')}: "
                      f"{letter.headers.get('x-dead-letter-error')}", flush=True)
            audit.ack_many(batch)
    return found


def run_everything(client: messaging.Client, count: int, timeout: float) -> int:
    run = uuid.uuid4().hex  # tells this run's orders from those of earlier runs
    # Declare the groups before sending: a group gets the messages sent after it exists.
    client.admin.create(ORDERS, groups=[WORKERS])
    client.admin.create(DEAD_LETTERS, groups=[AUDIT])
    poison = produce(client, count, run)

    stop = threading.Event()
    workers = threading.Thread(target=work, args=(client, stop))
    workers.start()
    deadline = time.monotonic() + timeout
    try:
        # Done when the group has nothing left: every order processed or dead-lettered.
        while client.admin.depth(ORDERS, WORKERS) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        workers.join()

    dead = read_dead_letters(client, run)
    left = client.admin.depth(ORDERS, WORKERS)
    print(f"done: sent {count} orders, dead-lettered {sorted(dead)} (expected {poison}), "
          f"{left} left in the queue")
    return 0 if sorted(dead) == poison and left == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("role", nargs="?", default="all",
                        choices=["all", "produce", "worker", "dead-letters"])
    parser.add_argument("--orders", type=int, default=20, help="orders to send")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="'all': give up after this many seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    with messaging.connect() as client:  # $MESSAGING_URL, else memory://
        print(f"backend: {client.url}", flush=True)
        if args.role == "produce":
            client.admin.create(ORDERS, groups=[WORKERS])
            produce(client, args.orders, uuid.uuid4().hex)
            return 0
        if args.role == "worker":
            client.admin.create(DEAD_LETTERS, groups=[AUDIT])
            work(client)
            return 0
        if args.role == "dead-letters":
            read_dead_letters(client)
            return 0
        return run_everything(client, args.orders, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
