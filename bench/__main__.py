"""``python -m bench <name> [options]``: run the benchmark module ``bench/<name>.py``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

import messaging
from bench.harness import known_benchmarks

_USAGE = "usage: python -m bench NAME [options]   (python -m bench NAME --help for options)"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    known = known_benchmarks()
    if not args or args[0] in ("-h", "--help"):
        out = sys.stdout if args else sys.stderr
        print(_USAGE, file=out)
        print(f"benchmarks: {', '.join(known) or '(none)'}", file=out)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in known:
        print(f"error: unknown benchmark {name!r}; known: {', '.join(known) or '(none)'}",
              file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"bench.{name}")
    except ImportError as error:
        print(f"error: benchmark {name!r} cannot be loaded: {error} (is its client library "
              f'installed? pip install "messaging[{name}]")', file=sys.stderr)
        return 2
    run: Callable[[list[str]], int] = module.main
    try:
        return int(run(rest))
    except messaging.MessagingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
