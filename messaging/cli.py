"""The ``messaging`` command line (also ``python -m messaging``).

Commands
--------
``demo``
    The order-processing scenario on the embedded engine (``memory://`` unless ``--url``
    or ``$MESSAGING_URL`` names another backend): a producer sends orders, a pool of
    workers processes them with retries, and one poison order ends in ``orders.dlq``.
``send URL DEST [VALUE...]``
    Send the values (or one message per stdin line; or ``--count N`` generated test
    messages, with a progress bar) and print each message's id. On a backend without
    replay, a destination with no group gets a note: nobody will receive what was sent.
``consume URL DEST``
    Print messages (id, key, attempt, headers, value) and ack them unless ``--no-ack``.
``stats URL [DEST]``
    Destinations, their groups and each group's depth, then the backend's capabilities.

Exit status
-----------
0 success; 1 the demo did not end as it should; 2 an error (``error: <message>`` on
stderr, never a traceback); 130 interrupted. A password given in a URL is never printed:
URLs are shown redacted, and the password is scrubbed from error texts as well.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TextIO

from tqdm import tqdm

import messaging
from messaging import dead_letter as letters
from messaging.urls import parse_url

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

_SEND_CHUNK = 100  # messages per send_many call for --count and piped stdin
_BAR_THRESHOLD = 1000  # consume shows a progress bar from this many --max messages on


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (the console script exits with it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parse(arguments)
    except SystemExit as exit_:  # --help, --version, or a usage error already printed
        return exit_.code if isinstance(exit_.code, int) else EXIT_ERROR
    secrets = _Secrets.from_sources([*arguments, os.environ.get("MESSAGING_URL", "")])
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        with _library_logging(args.verbose):
            return command(args)
    except messaging.MessagingError as error:
        print(f"error: {secrets.scrub(str(error))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `messaging consume ... | head`
        with contextlib.suppress(OSError):  # keep the interpreter's exit flush quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _parse(arguments: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args, extra = parser.parse_known_args(arguments)
    if extra:
        # VALUEs of `send` may also come after its options (`send URL DEST --json '{...}'`).
        if args.command != "send" or any(item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.values = [*args.values, *extra]
    return args


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show the library's warnings and progress log on stderr")
    parser = argparse.ArgumentParser(
        prog="messaging", parents=[common],
        description="One Producer/Consumer API over Kafka, RabbitMQ, SQS, Redis Streams and "
                    "the built-in engine (memory://, sqlite:///path.db).",
    )
    parser.add_argument("--version", action="version",
                        version=f"messaging {messaging.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", parents=[common], help="run the order-processing scenario",
        description="A producer sends orders to 'orders'; a pool of workers processes them "
                    "with retries; one poison order always fails and ends in 'orders.dlq'. "
                    "Exit 0 when every good order was processed once and the poison one is "
                    "in the dead-letter queue.")
    demo.add_argument("--url", help="backend URL (default: $MESSAGING_URL, else memory://)")
    demo.add_argument("--orders", type=_positive_int, default=20, metavar="N",
                      help="orders to send (default 20)")
    demo.add_argument("--workers", type=_positive_int, default=4, metavar="N",
                      help="concurrent handlers (default 4)")
    demo.add_argument("--timeout", type=_positive_float, default=60.0, metavar="S",
                      help="give up after S seconds (default 60)")
    demo.set_defaults(func=_demo)

    send = commands.add_parser(
        "send", parents=[common], help="send messages",
        description="Send each VALUE, or each line of stdin when no VALUE is given, or "
                    "--count generated test messages. Prints the id of each message sent "
                    "(not for --count).")
    send.add_argument("url", metavar="URL")
    send.add_argument("destination", metavar="DEST")
    send.add_argument("values", nargs="*", metavar="VALUE")
    send.add_argument("--key", help="message key (per-key ordering, partitioning)")
    send.add_argument("--header", action="append", type=_header, default=[],
                      metavar="NAME=VALUE", help="a header; repeatable")
    send.add_argument("--json", action="store_true",
                      help="parse each value as JSON (sent as application/json)")
    send.add_argument("--count", type=_positive_int, metavar="N",
                      help="send N generated test messages, with a progress bar")
    send.add_argument("--delay", type=_positive_float, metavar="S",
                      help="deliver no earlier than S seconds from now")
    send.add_argument("--priority", type=int, metavar="P", help="priority (where supported)")
    send.set_defaults(func=_send)

    consume = commands.add_parser(
        "consume", parents=[common], help="print (and ack) messages",
        description="Join GROUP on DEST and print each message received; ack it unless "
                    "--no-ack (unacked messages go back to the group at exit, attempt + 1). "
                    "Stops after --max messages, or after --timeout seconds without one.")
    consume.add_argument("url", metavar="URL")
    consume.add_argument("destination", metavar="DEST")
    consume.add_argument("--group", default="default", help="consumer group (default 'default')")
    consume.add_argument("--max", type=_positive_int, metavar="N",
                         help="stop after N messages")
    consume.add_argument("--timeout", type=_non_negative_float, default=2.0, metavar="S",
                         help="stop after S seconds without a message (default 2)")
    consume.add_argument("--no-ack", action="store_true",
                         help="do not ack: the messages stay with the group")
    consume.add_argument("--from-beginning", action="store_true",
                         help="seek the group to the beginning first (backends with replay)")
    consume.add_argument("--json", action="store_true", help="print one JSON object per line")
    consume.set_defaults(func=_consume)

    stats = commands.add_parser(
        "stats", parents=[common], help="destinations, groups, depths, capabilities",
        description="Print each destination's groups with their depth (messages not yet "
                    "acked by the group), then what the backend guarantees.")
    stats.add_argument("url", metavar="URL")
    stats.add_argument("destination", nargs="?", metavar="DEST")
    stats.set_defaults(func=_stats)
    return parser


# -- send ----------------------------------------------------------------------------------
def _send(args: argparse.Namespace) -> int:
    if args.count is not None and args.values:
        raise messaging.ConfigurationError("give either VALUEs or --count, not both")
    headers = dict(args.header) or None
    started = time.perf_counter()
    with messaging.connect(args.url) as client:
        producer = client.producer()

        def records(values: Iterable[object]) -> list[messaging.Record]:
            return [messaging.Record(value, key=args.key, headers=headers, delay=args.delay,
                                     priority=args.priority) for value in values]

        if args.count is not None:
            sent = 0
            with tqdm(total=args.count, unit="msg", desc=f"send {args.destination}",
                      file=sys.stderr, disable=None) as bar:
                while sent < args.count:
                    size = min(_SEND_CHUNK, args.count - sent)
                    producer.send_many(args.destination, records(
                        _test_message(sent + i, args.count) for i in range(size)))
                    sent += size
                    bar.update(size)
        else:
            sent = 0
            for chunk in _value_chunks(args.values, sys.stdin):
                values = [_parse_value(text, sent + i + 1, args.json)
                          for i, text in enumerate(chunk)]
                for message_id in producer.send_many(args.destination, records(values)):
                    print(message_id, flush=True)
                sent += len(values)
        unheard = _unheard(client, args.destination)
    elapsed = time.perf_counter() - started
    print(f"sent {sent} message{'s' * (sent != 1)} to {args.destination!r} on {client.url} "
          f"in {elapsed:.2f} s", file=sys.stderr)
    if unheard:
        print(unheard, file=sys.stderr)
    return EXIT_OK


def _unheard(client: messaging.Client, destination: str) -> str | None:
    """A note when what was just sent reaches no one: the destination has no group, and
    the backend keeps no history for a group made later (contract: group lifetime). A
    first 'send' then 'consume' on such a backend otherwise looks like a lost message."""
    if client.capabilities_for(destination).replay:
        return None
    try:
        groups = client.admin.groups(destination)
    except messaging.MessagingError:
        # The backend cannot tell (RabbitMQ), or may not be asked (a missing permission
        # to list subscriptions): the send went through, and a note must not fail it.
        return None
    if groups:
        return None
    return (f"note: {destination!r} has no group and this backend has no replay, so no "
            f"consumer will receive these messages; create a group first ('messaging "
            f"consume URL {destination} --group NAME', or admin.create({destination!r}, "
            f"groups=[NAME]))")


def _value_chunks(values: list[str], stdin: TextIO) -> Iterator[list[str | bytes]]:
    """The command-line values as one chunk, or stdin lines: one at a time from a
    terminal (each is sent as it is typed), in chunks from a pipe. A value that is not
    UTF-8 (binary input) is its bytes, sent as they came rather than refused as text."""
    if values:
        yield [_argument(value) for value in values]
        return
    interactive = stdin.isatty()
    chunk: list[str | bytes] = []
    for line in _lines(stdin):
        if not line:
            continue
        chunk.append(line)
        if interactive or len(chunk) >= _SEND_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _argument(value: str) -> str | bytes:
    """Python hands over argument bytes that are not UTF-8 as surrogates: those bytes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")
    return value


def _lines(stdin: TextIO) -> Iterator[str | bytes]:
    """stdin's lines without their line ends, read as bytes where stdin has them, so that
    input that is not UTF-8 is no error: such a line is its bytes."""
    raw = getattr(stdin, "buffer", None)
    if raw is None:
        for text in stdin:
            yield text.rstrip("\r\n")
        return
    for line in raw:
        data = line.rstrip(b"\r\n")
        try:
            yield data.decode("utf-8")
        except UnicodeDecodeError:
            yield data


def _parse_value(value: str | bytes, number: int, as_json: bool) -> object:
    if not as_json:
        return value
    try:
        return json.loads(value)
    except ValueError as error:
        raise messaging.SerializationError(f"value {number} is not JSON: {error}") from error


def _test_message(number: int, total: int) -> object:
    return {"n": number + 1, "of": total, "test": True}


# -- consume -------------------------------------------------------------------------------
def _consume(args: argparse.Namespace) -> int:
    received = acked = 0
    started = time.perf_counter()
    show_bar = (args.max is not None and args.max >= _BAR_THRESHOLD
                and not sys.stdout.isatty())
    with messaging.connect(args.url) as client:
        new_group = _is_new_group(client, args.destination, args.group)
        with client.consumer(args.destination, group=args.group) as consumer, tqdm(
                total=args.max, unit="msg", desc=f"consume {args.destination}",
                file=sys.stderr, disable=None if show_bar else True) as bar:
            if args.from_beginning:
                consumer.seek("beginning")
            idle_since = time.monotonic()
            while args.max is None or received < args.max:
                remaining_idle = max(0.0, args.timeout - (time.monotonic() - idle_since))
                wanted = 100 if args.max is None else min(100, args.max - received)
                batch = consumer.receive(max_messages=wanted, timeout=min(remaining_idle, 1.0))
                if not batch:
                    if remaining_idle <= 0:
                        break
                    continue
                idle_since = time.monotonic()
                for message in batch:
                    print(_format_message(message, args.json))
                sys.stdout.flush()
                if not args.no_ack:
                    consumer.ack_many(batch)
                    acked += len(batch)
                received += len(batch)
                bar.update(len(batch))
    elapsed = time.perf_counter() - started
    verb = "acked" if not args.no_ack else "left unacked"
    print(f"received {received} message{'s' * (received != 1)} from {args.destination!r} "
          f"as {args.group!r} ({verb} {acked if not args.no_ack else received}) "
          f"in {elapsed:.2f} s", file=sys.stderr)
    if received == 0 and new_group and not args.from_beginning:
        print(f"note: group {args.group!r} did not exist before this command; a group "
              "receives only messages sent after it exists (use --from-beginning where the "
              "backend has replay, or declare the group first)", file=sys.stderr)
    return EXIT_OK


def _is_new_group(client: messaging.Client, destination: str, group: str) -> bool:
    try:
        return group not in client.admin.groups(destination)
    except messaging.DestinationNotFound:
        return True
    except messaging.UnsupportedFeature:
        return False  # the backend cannot tell; say nothing


def _format_message(message: messaging.Message, as_json: bool) -> str:
    value = message.value
    if as_json:
        record: dict[str, object] = {
            "id": message.id, "key": message.key, "attempt": message.attempt,
            "destination": message.destination,
            "timestamp": None if message.timestamp is None else message.timestamp.isoformat(),
            "headers": message.headers,
        }
        if isinstance(value, bytes):
            record["body_base64"] = base64.b64encode(value).decode("ascii")
        else:
            record["value"] = value
        return json.dumps(record, ensure_ascii=False, default=str)
    shown = repr(value) if isinstance(value, bytes) else value if isinstance(value, str) \
        else json.dumps(value, ensure_ascii=False, default=str)
    headers = json.dumps(message.headers, ensure_ascii=False, sort_keys=True)
    return (f"id={message.id} key={message.key if message.key is not None else '-'} "
            f"attempt={message.attempt} headers={headers} value={shown}")


# -- stats ---------------------------------------------------------------------------------
def _stats(args: argparse.Namespace) -> int:
    with messaging.connect(args.url) as client:
        admin = client.admin
        if args.destination is not None:
            destinations = [args.destination]
        else:
            try:
                destinations = admin.destinations()
            except messaging.UnsupportedFeature as error:
                raise messaging.UnsupportedFeature(
                    f"{error}; name a destination: messaging stats URL DEST") from error
        rows: list[tuple[str, str, str]] = []
        for destination in destinations:
            try:
                groups = admin.groups(destination)
            except messaging.UnsupportedFeature:
                rows.append((destination, "(groups not listable)", "-"))
                continue
            if not groups:
                rows.append((destination, "(no groups)", "-"))
            for group in groups:
                rows.append((destination, group, str(admin.depth(destination, group))))
        capabilities = (client.capabilities_for(args.destination) if args.destination
                        else client.capabilities)
        print(f"backend: {client.url}")
        if rows:
            print(_table(("destination", "group", "depth"), rows, right=(2,)))
        else:
            print("no destinations")
        print()
        print("capabilities:")
        for field in dataclasses.fields(capabilities):
            print(f"  {field.name:<20} {_show(getattr(capabilities, field.name))}")
    return EXIT_OK


def _show(value: object) -> str:
    if isinstance(value, frozenset | set):
        return ", ".join(sorted(map(str, value))) or "-"
    if value is None:
        return "-"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
           ) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(width) if i in right else cell.ljust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
                         ).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths]),
                      *(line(row) for row in rows)])


# -- demo ----------------------------------------------------------------------------------
ORDERS = "orders"
DEAD_LETTERS = "orders.dlq"
WORKER_GROUP = "workers"
AUDIT_GROUP = "dlq-audit"
UNKNOWN_SKU = "XX-000"
_SKUS = ("BK-101", "MG-220", "TS-330", "PN-440", "CB-550")


@dataclasses.dataclass
class _DemoState:
    run: str
    total: int
    poison: int
    flaky: int | None
    retry: messaging.Retry
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    processed: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    dead: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    retries: int = 0
    leftovers: int = 0
    error: BaseException | None = None

    @property
    def good(self) -> set[int]:
        return set(range(1, self.total + 1)) - {self.poison}

    def complete(self) -> bool:
        with self.lock:
            return self.good <= set(self.processed) and self.poison in self.dead

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)


def _demo(args: argparse.Namespace) -> int:
    total: int = args.orders
    poison = total // 2 + 1
    state = _DemoState(run=uuid.uuid4().hex[:12], total=total, poison=poison,
                       flaky=poison // 2 or None,
                       retry=messaging.Retry(max_attempts=3, backoff=0.1))
    with messaging.connect(args.url) as client:
        print(f"messaging demo on {client.url}: {total} orders -> {ORDERS!r}, "
              f"{args.workers} workers, up to {state.retry.max_attempts} attempts, "
              f"dead letters -> {DEAD_LETTERS!r}")
        flaky = f"; order {state.flaky} fails once (payment timeout)" if state.flaky else ""
        print(f"order {poison} is poison (unknown SKU {UNKNOWN_SKU}){flaky}")
        # Declare the groups first: a group receives the messages sent after it exists.
        client.admin.create(ORDERS, groups=[WORKER_GROUP])
        client.admin.create(DEAD_LETTERS, groups=[AUDIT_GROUP])
        started = time.perf_counter()
        client.producer().send_many(ORDERS, [
            messaging.Record(order, key=str(order["customer"]), headers={"demo-run": state.run})
            for order in (_order(number, state) for number in range(1, total + 1))
        ])
        print(f"sent {total} orders in {time.perf_counter() - started:.3f} s")

        stop = threading.Event()
        audit = client.consumer(DEAD_LETTERS, group=AUDIT_GROUP)
        monitor = threading.Thread(target=_watch_dead_letters,
                                   args=(audit, state, stop, started + args.timeout),
                                   name="demo-dlq-audit", daemon=True)
        monitor.start()
        try:
            client.consumer(ORDERS, group=WORKER_GROUP).run(
                lambda message: _handle_order(message, state), concurrency=args.workers,
                retry=state.retry, dead_letter=DEAD_LETTERS, stop_event=stop)
        finally:
            stop.set()
            monitor.join()
            audit.close()
        elapsed = time.perf_counter() - started
    if state.error is not None:
        raise state.error
    return _demo_verdict(state, elapsed)


def _order(number: int, state: _DemoState) -> dict[str, object]:
    return {
        "run": state.run,
        "order": number,
        "customer": f"user-{(number - 1) % 5 + 1}",
        "sku": UNKNOWN_SKU if number == state.poison else _SKUS[number % len(_SKUS)],
        "total": round(9.5 + 3.25 * number, 2),
    }


def _handle_order(message: messaging.Message, state: _DemoState) -> None:
    order = message.value
    if not (isinstance(order, dict) and order.get("run") == state.run):
        with state.lock:
            state.leftovers += 1  # from an earlier run on a durable backend: ack, ignore
        return
    number = int(order["order"])
    time.sleep(0.005 + 0.02 * random.random())  # the "work"
    if number == state.poison:
        _fail(message, state, number, ValueError(f"order {number}: unknown SKU {order['sku']!r}"))
    if number == state.flaky and message.attempt == 1:
        _fail(message, state, number, TimeoutError("payment service did not answer"))
    with state.lock:
        state.processed[number] += 1
    state.say(f"order {number:>3}  processed      attempt {message.attempt}  "
              f"{order['customer']}  {order['sku']}  total {order['total']:.2f}")


def _fail(message: messaging.Message, state: _DemoState, number: int, error: Exception
          ) -> None:
    last = state.retry.exhausted(message.attempt)
    if not last:
        with state.lock:
            state.retries += 1
    state.say(f"order {number:>3}  failed         attempt {message.attempt}  "
              f"{type(error).__name__}: {error}; {'giving up' if last else 'will retry'}")
    raise error


def _watch_dead_letters(audit: messaging.Consumer, state: _DemoState,
                        stop: threading.Event, deadline: float) -> None:
    """Read ``orders.dlq`` as the audit group; stop the workers once every order has
    ended (processed or dead-lettered), or at the deadline."""
    try:
        while not stop.is_set():
            batch = audit.receive(max_messages=10, timeout=0.1)
            for letter in batch:
                value = letter.value
                if not (isinstance(value, dict) and value.get("run") == state.run):
                    continue  # a letter of an earlier run
                number = int(value["order"])
                with state.lock:
                    state.dead[number] += 1
                headers = letter.headers
                state.say(
                    f"order {number:>3}  dead-lettered  after "
                    f"{headers.get(letters.ATTEMPTS, '?')} attempts -> {DEAD_LETTERS}  "
                    f"reason {headers.get(letters.REASON, '?')}: "
                    f"{headers.get(letters.ERROR, 'no error recorded')}")
            audit.ack_many(batch)
            if state.complete() or time.perf_counter() > deadline:
                break
    except BaseException as error:
        state.error = error
    finally:
        stop.set()


def _demo_verdict(state: _DemoState, elapsed: float) -> int:
    processed = sum(state.processed.values())
    dead = sum(state.dead.values())
    print(f"summary: sent {state.total}, processed {processed}, dead-lettered {dead}, "
          f"retries {state.retries}, {elapsed:.2f} s"
          + (f" ({state.leftovers} left over from earlier runs, acked)" if state.leftovers
             else ""))
    problems = []
    missing = sorted(state.good - set(state.processed))
    if missing:
        problems.append(f"orders never processed: {missing}")
    twice = sorted(n for n, count in state.processed.items() if count > 1)
    if twice:
        problems.append(f"orders processed more than once: {twice}")
    if state.poison not in state.dead:
        problems.append(f"poison order {state.poison} is not in {DEAD_LETTERS}")
    wrongly_dead = sorted(set(state.dead) - {state.poison})
    if wrongly_dead:
        problems.append(f"good orders dead-lettered: {wrongly_dead}")
    if problems:
        print("FAILED: " + "; ".join(problems))
        return EXIT_FAILED
    print(f"ok: every good order processed once; order {state.poison} is in {DEAD_LETTERS}")
    return EXIT_OK


# -- helpers -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Secrets:
    """Passwords found in the URLs of this invocation, to scrub from error texts (a
    driver's native error message may quote what it was given)."""

    passwords: tuple[str, ...]

    @classmethod
    def from_sources(cls, texts: Iterable[str]) -> _Secrets:
        found: set[str] = set()
        for text in texts:
            if "://" not in text or "@" not in text:
                continue
            password: str | None
            try:
                password = parse_url(text).password
            except messaging.MessagingError:
                match = re.search(r"://[^/@:]*:([^@/]*)@", text)
                password = match.group(1) if match else None
            if password:
                found.update({password, urllib.parse.quote(password, safe=""),
                              urllib.parse.unquote(password)})
        return cls(tuple(sorted(found, key=len, reverse=True)))

    def scrub(self, text: str) -> str:
        # Whole words only: a short password ("e", "guest") must not mangle the words
        # that happen to contain it. A user name equal to the password is scrubbed too,
        # since showing it would show the password.
        for password in self.passwords:
            text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(password)}(?![0-9A-Za-z])", "***",
                          text)
        return text


@contextlib.contextmanager
def _library_logging(verbose: bool) -> Iterator[None]:
    """The library logs retries as warnings and dead letters as errors; the commands
    report them themselves, so only other errors show unless ``--verbose``."""
    logger = logging.getLogger("messaging")
    previous = logger.level
    handler: logging.Handler | None = None
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    elif previous == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    worker = logging.getLogger("messaging.worker")
    if not verbose:
        worker.addFilter(_reported_by_the_command)
    try:
        yield
    finally:
        logger.setLevel(previous)
        worker.removeFilter(_reported_by_the_command)
        if handler is not None:
            logger.removeHandler(handler)


def _reported_by_the_command(record: logging.LogRecord) -> bool:
    """The worker's log of a dead letter, which the demo prints as its own line."""
    return not hasattr(record, "dead_letter")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


if __name__ == "__main__":
    raise SystemExit(main())
