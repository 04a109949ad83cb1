"""Email/SMS sending with delayed retry: a provider that says "try again in N seconds".

The backend comes from ``$MESSAGING_URL`` (``memory://`` when unset):

    python examples/delayed_retry_sms.py
    MESSAGING_URL=sqlite:///sms.db python examples/delayed_retry_sms.py
    MESSAGING_URL=sqs://?region=us-east-1&endpoint_url=http://127.0.0.1:4566 \\
        python examples/delayed_retry_sms.py

The SMS provider rate-limits: it refuses some messages with a ``retry_after``. The
handler hands such a message back with ``message.nack(delay=retry_after)``, so the broker
keeps it out of sight for that long and the worker slot is free meanwhile. Where the
backend has no delay (``capabilities.max_delay is None``) the handler waits in its own
slot instead and then nacks. Any other error is retried with the ``Retry`` backoff and,
after ``max_attempts``, goes to ``sms.dlq``. A reminder is scheduled with
``send(delay=...)`` where the backend supports delay.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import messaging

OUTBOX = "sms"
DEAD_LETTERS = "sms.dlq"
SENDERS = "sms-senders"
RETRY = messaging.Retry(max_attempts=5, backoff=0.2)
REMINDER_DELAY = 0.5
_print_lock = threading.Lock()


def say(text: str) -> None:
    """print() from several handler threads, one whole line at a time."""
    with _print_lock:
        print(text, flush=True)


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:.2f} s")
        self.retry_after = retry_after


class Provider:
    """A stand-in for an SMS gateway: refuses every third number on its first try."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(self, number: str, text: str) -> None:
        with self._lock:
            self._tries[number] = tries = self._tries.get(number, 0) + 1
            if int(number[-1]) % 3 == 0 and tries == 1:
                raise RateLimited(retry_after=0.3)
            self.delivered[number] = time.monotonic()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    provider = Provider()
    first_try: dict[str, float] = {}
    done = threading.Event()
    with messaging.connect() as client:  # $MESSAGING_URL, else memory://
        caps = client.capabilities
        print(f"backend: {client.url} (max_delay: {caps.max_delay})", flush=True)
        run = uuid.uuid4().hex
        client.admin.create(OUTBOX, groups=[SENDERS])
        numbers = [f"+46700000{n:03d}" for n in range(1, 10)]
        producer = client.producer()
        producer.send_many(OUTBOX, [
            {"run": run, "to": number, "text": "Your order has shipped"} for number in numbers
        ])
        expected = set(numbers)
        if caps.max_delay is not None:
            reminder = "+46700000998"
            first_try[reminder] = time.monotonic() + REMINDER_DELAY  # when it is due
            producer.send(OUTBOX, {"run": run, "to": reminder, "text": "Rate your delivery"},
                          delay=REMINDER_DELAY)
            expected.add(reminder)
            print(f"scheduled a reminder to {reminder} in {REMINDER_DELAY} s", flush=True)

        def handle(message: messaging.Message) -> None:
            sms = message.value
            if not (isinstance(sms, dict) and sms.get("run") == run):
                return  # left by an earlier run
            number = str(sms["to"])
            first_try.setdefault(number, time.monotonic())
            try:
                provider.send(number, str(sms["text"]))
            except RateLimited as error:
                say(f"{number}: {error} (attempt {message.attempt})")
                if caps.max_delay is None:
                    # No broker-side delay: wait here (this holds a worker slot), then
                    # hand it back for immediate redelivery.
                    done.wait(error.retry_after)
                    message.nack()
                else:
                    message.nack(delay=min(error.retry_after, caps.max_delay))
                return
            waited = provider.delivered[number] - first_try[number]
            say(f"{number}: delivered on attempt {message.attempt}, "
                f"{waited:.2f} s after it was due")
            if set(provider.delivered) >= expected:
                done.set()

        timer = threading.Timer(30.0, done.set)
        timer.start()
        try:
            client.consumer(OUTBOX, group=SENDERS).run(
                handle, concurrency=3, retry=RETRY, dead_letter=DEAD_LETTERS, stop_event=done)
        finally:
            timer.cancel()

    missing = sorted(expected - set(provider.delivered))
    retried = sorted(n for n in provider.delivered if int(n[-1]) % 3 == 0)
    # A retry must not come before the provider's retry_after, nor a delayed message
    # before its delay (a little slack for clock reads).
    early = [n for n in provider.delivered
             if provider.delivered[n] - first_try[n] < (0.29 if n in retried else -0.01)]
    print(f"delivered {len(provider.delivered)} of {len(expected)}; retried after the "
          f"provider's delay: {len(retried)}" + (f"; MISSING {missing}" if missing else "")
          + (f"; RETRIED TOO EARLY {early}" if early else ""), flush=True)
    return 0 if not missing and not early else 1


if __name__ == "__main__":
    raise SystemExit(main())
