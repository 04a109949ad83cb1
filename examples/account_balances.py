"""Account balances as an event-sourced projection, rebuilt by replaying the events.

The backend comes from ``$MESSAGING_URL`` (``memory://`` when unset); the code is the same
on every broker:

    python examples/account_balances.py
    MESSAGING_URL=sqlite:///accounts.db python examples/account_balances.py
    MESSAGING_URL=kafka://127.0.0.1:9092 python examples/account_balances.py
    MESSAGING_URL=redis://127.0.0.1:6379/0 python examples/account_balances.py

Every change to an account is an event (opened, deposited, withdrew) keyed by the
account, so one account's events keep their order where the backend orders per key
(``client.capabilities.ordering``). The ``balances`` service folds them into a table with
a worker loop. Each event carries its account's sequence number, which makes the fold
safe on every backend: an event seen again (at-least-once) is skipped, and one that
arrives before its predecessor (a backend without per-key order) raises, so the worker
retries it after a backoff, by which time the predecessor has been applied.

Then the table is thrown away and rebuilt from the log: a new group ``seek``\\ s to the
beginning and folds everything again, which must give the same balances. That needs
``client.capabilities.replay``; the example says so on a backend without it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid

import messaging

EVENTS = "account-events"
BALANCES = "balances"  # the live projection's consumer group
# An event that came before its predecessor waits for it: short waits, capped (a growing
# backoff would leave it waiting long after the predecessor was folded in), and never
# given up on (a backend without per-key order may deliver an account's events in any
# order, and an event dropped would stall its account for good). Attempts count every
# delivery, also those where the worker gave an event back unstarted so that a retried
# predecessor of its key is not overtaken; the run's own timeout bounds the waiting.
RETRY = messaging.Retry(max_attempts=1_000_000, backoff=0.05, max_backoff=1.0)


class OutOfOrder(Exception):
    """An event came before its account's previous one: retried after a backoff."""


@dataclasses.dataclass
class Account:
    balance: int = 0  # cents
    applied: int = 0  # the sequence number of the last event folded in
    refused: int = 0  # withdrawals the balance did not cover


class Projection:
    """Balances by account, folded from events in each account's order."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.accounts: dict[str, Account] = {}
        self.lock = threading.Lock()
        self.applied = 0

    def apply(self, message: messaging.Message) -> None:
        event = message.value
        if not isinstance(event, dict) or event.get("run") != self.run:
            return  # an event of an earlier run on a durable backend: not ours
        with self.lock:
            account = self.accounts.setdefault(str(event["account"]), Account())
            seq = int(event["seq"])
            if seq <= account.applied:
                return  # delivered again (at-least-once): already folded in
            if seq != account.applied + 1:
                raise OutOfOrder(f"{event['account']} event {seq} before {account.applied + 1}")
            amount = int(event.get("cents", 0))
            if event["type"] == "deposited":
                account.balance += amount
            elif event["type"] == "withdrew":
                if amount <= account.balance:
                    account.balance -= amount
                else:
                    account.refused += 1  # a business rule that needs the right order
            account.applied = seq
            self.applied += 1

    def table(self) -> dict[str, tuple[int, int]]:
        with self.lock:
            return {name: (a.balance, a.refused) for name, a in sorted(self.accounts.items())}


def history(run: str, accounts: int = 5, per_account: int = 12) -> list[dict[str, object]]:
    """Each account is opened, then gets deposits and withdrawals, some uncovered."""
    events: list[dict[str, object]] = []
    for n in range(accounts):
        account = f"acct-{n}"
        events.append({"run": run, "account": account, "seq": 1, "type": "opened"})
        for seq in range(2, per_account + 1):
            kind = "deposited" if seq % 3 else "withdrew"
            cents = 1_000 * (n + 1) if kind == "deposited" else 2_500 + 700 * n
            events.append({"run": run, "account": account, "seq": seq, "type": kind,
                           "cents": cents})
    # Interleave the accounts as a real system would write them.
    return sorted(events, key=lambda event: (event["seq"], event["account"]))


def fold_live(client: messaging.Client, projection: Projection, expected: int,
              timeout: float = 60.0) -> None:
    """The balances service: a worker loop, stopped once every event is folded in."""
    done = threading.Event()

    def handle(message: messaging.Message) -> None:
        projection.apply(message)
        if projection.applied >= expected:
            done.set()

    timer = threading.Timer(timeout, done.set)
    timer.start()
    try:
        client.consumer(EVENTS, group=BALANCES).run(handle, concurrency=4, retry=RETRY,
                                                    stop_event=done)
    finally:
        timer.cancel()


def rebuild(client: messaging.Client, run: str, expected: int,
            timeout: float = 60.0) -> Projection:
    """A fresh projection from the whole log: a new group reads from the beginning."""
    projection = Projection(run)
    pending: list[messaging.Message] = []
    with client.consumer(EVENTS, group=f"rebuild-{uuid.uuid4().hex[:8]}") as consumer:
        consumer.seek("beginning")
        deadline = time.monotonic() + timeout
        while projection.applied < expected and time.monotonic() < deadline:
            batch = consumer.receive(max_messages=100, timeout=0.5)
            # Read in one pass; an event ahead of its account's turn waits in memory.
            pending += batch
            progress = True
            while progress:
                progress, waiting = False, []
                for message in pending:
                    try:
                        projection.apply(message)
                        progress = True
                    except OutOfOrder:
                        waiting.append(message)
                pending = waiting
            consumer.ack_many(batch)
    return projection


def main() -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    with messaging.connect() as client:  # $MESSAGING_URL, else memory://
        print(f"backend: {client.url}", flush=True)
        run = uuid.uuid4().hex
        # The group exists before the first event, so it receives every one.
        client.admin.create(EVENTS, partitions=3, groups=[BALANCES])
        events = history(run)
        client.producer().send_many(EVENTS, [
            messaging.Record(event, key=str(event["account"])) for event in events])
        print(f"appended {len(events)} events for 5 accounts to {EVENTS!r} "
              f"(ordering: {client.capabilities.ordering})", flush=True)

        live = Projection(run)
        fold_live(client, live, len(events))
        for name, (balance, refused) in live.table().items():
            print(f"  {name}: {balance / 100:8.2f}  ({refused} withdrawals refused)",
                  flush=True)
        ok = live.applied == len(events)
        print(f"balances (live): {live.applied} of {len(events)} events folded in", flush=True)

        if client.capabilities.replay:
            rebuilt = rebuild(client, run, len(events))
            same = rebuilt.table() == live.table()
            print(f"balances rebuilt from the beginning "
                  f"{'match the live ones' if same else 'DIFFER from the live ones'}",
                  flush=True)
            ok = ok and same
        else:
            print(f"no replay on {client.url.scheme}:// (capabilities.replay is False): "
                  "the events are gone once acked, so the balances cannot be rebuilt from "
                  "them; keep the log in a store of your own or use a backend with replay",
                  flush=True)
        print("ok" if ok else "FAILED", flush=True)
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
