"""A group member that dies holding messages, for the crash contract (``test_crash``).

Run as a child process::

    MESSAGING_URL=URL python -m messaging_contracts.member --destination D --group G \\
        --hold 6 --ack 2 [--visibility-timeout S] [--connect-options JSON]

(``--url`` works too, but the environment keeps a password off the process list.)

It joins group G on destination D, receives until it holds ``--hold`` messages, acks the
first ``--ack`` of them (in the order received), then prints ONE line of JSON on stdout::

    {"event": "holding", "acked": [[id, body], ...], "held": [[id, body], ...]}

and waits to be killed. It never closes its consumer and never settles the held messages:
whoever kills it (SIGKILL) leaves them to the broker's failure detection or visibility
timeout. If nobody kills it within ``--linger`` seconds it exits abruptly (``os._exit``),
still without cleanup. Bodies are expected to be ASCII text.

For a URL whose broker lives only inside one process, :func:`hold_messages` is called in
a thread of the test process instead; the thread then simply stops, leaving its consumer
unclosed (see ``test_crash``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import messaging
from messaging_contracts.helpers import receive_until

HOLDING = "holding"


def hold_messages(consumer: messaging.Consumer, hold: int, ack: int, timeout: float
                  ) -> dict[str, object]:
    """Receive ``hold`` messages (waiting at most ``timeout``), ack the first ``ack``, and
    return the report; the rest stay unsettled."""
    got = receive_until(consumer, hold, timeout)
    acked, held = got[:ack], got[ack:]
    for message in acked:
        message.ack()
    return {
        "event": HOLDING,
        "acked": [[m.id, m.body.decode("ascii", "replace")] for m in acked],
        "held": [[m.id, m.body.decode("ascii", "replace")] for m in held],
        "attempts": [m.attempt for m in got],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m messaging_contracts.member",
                                     description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--url", default=None, help="default: $MESSAGING_URL")
    parser.add_argument("--destination", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--hold", type=int, required=True)
    parser.add_argument("--ack", type=int, default=0)
    parser.add_argument("--visibility-timeout", type=float, default=None)
    parser.add_argument("--connect-options", default="{}",
                        help="JSON object of keyword arguments for messaging.connect")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="longest wait for the messages to hold")
    parser.add_argument("--linger", type=float, default=120.0,
                        help="seconds to wait for the kill before exiting abruptly")
    args = parser.parse_args(argv)

    client = messaging.connect(args.url, **json.loads(args.connect_options))
    consumer = client.consumer(args.destination, args.group,
                               visibility_timeout=args.visibility_timeout,
                               prefetch=max(1, args.hold))
    report = hold_messages(consumer, args.hold, args.ack, args.timeout)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    time.sleep(args.linger)
    os._exit(3)  # never killed: still die without closing anything


if __name__ == "__main__":
    sys.exit(main())
