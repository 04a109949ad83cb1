"""Throughput benchmarks: ``python -m bench <name> [options]``.

Every module of this package is a benchmark, named after its file (``bench/reference.py``
is ``python -m bench reference``), except the helpers listed in
:data:`bench.harness.HELPERS` and modules whose name starts with ``_``. A benchmark module
defines ``main(argv: list[str]) -> int``; an adapter adds ``bench/kafka.py`` and so on,
measuring the adapter next to a baseline of the plain client library in the same run
(:func:`bench.harness.adapter_ops` is the adapter half for any backend, and
:func:`bench.harness.compare` the whole comparison given the baselines' ops).

Benchmarks print numbers; they are never tests with wall-clock asserts.
"""
