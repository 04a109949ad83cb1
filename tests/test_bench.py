"""Smoke tests of ``python -m bench``: it runs and prints its table. Never a speed assert."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import harness
from bench.__main__ import main as bench_main

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGING_")}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_reference_prints_the_table_with_ratios_and_targets() -> None:
    result = _run("reference", "--messages", "200")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("backend"))
    assert header.split()[4:] == ["adapter", "msg/s", "baseline", "msg/s", "ratio",
                                  "adapter", "cpu", "us/msg", "baseline", "cpu", "us/msg"]
    for backend in ("memory://", "sqlite://"):
        for batch in (1, 100):
            for metric in harness.METRICS:
                assert re.search(
                    rf"^{re.escape(backend)}\s+{batch}\s+{re.escape(metric)}\s+[\d,]+\s+"
                    r"[\d,]+\s+[\d,]+\s+\d+\.\d{3}\s+\d+\.\d\s+\d+\.\d$", result.stdout,
                    re.M,
                ), f"no {backend} batch {batch} {metric} row:\n{result.stdout}"
    assert re.search(r"memory:// end-to-end at batch 100 >= 100,000 msg/s: [\d,]+\s+"
                     r"(met|NOT MET)", result.stdout)
    assert re.search(r"sqlite:// end-to-end at batch 100 >= 10,000 msg/s: [\d,]+\s+"
                     r"(met|NOT MET)", result.stdout)


def test_worker_prints_run_against_the_batch_loop_per_concurrency() -> None:
    result = _run("worker", "--messages", "300", "--rounds", "1", "--concurrency", "1", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    for concurrency in (1, 3):
        assert re.search(
            rf"^memory run\(concurrency={concurrency}\)\s+100\s+handled\s+300\s+[\d,]+\s+"
            r"[\d,]+\s+\d+\.\d{3}\s+\d+\.\d\s+\d+\.\d$", result.stdout, re.M,
        ), result.stdout


def test_unknown_benchmark_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nosuch'" in err
    assert "reference" in err


def test_helpers_are_not_benchmarks_and_help_lists_benchmarks(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "reference" in harness.known_benchmarks()
    assert "harness" not in harness.known_benchmarks()
    assert bench_main(["--help"]) == 0
    assert "reference" in capsys.readouterr().out
    assert bench_main([]) == 2


def test_unknown_benchmark_as_a_subprocess() -> None:
    result = _run("nosuch")
    assert result.returncode == 2
    assert "known: " in result.stderr
    assert "reference" in result.stderr
    assert "Traceback" not in result.stderr


def test_interleaved_sides_take_turns_batch_by_batch_and_each_does_all_its_work() -> None:
    calls: list[tuple[str, str, int]] = []

    def side(name: str) -> harness.Ops:
        return harness.Ops(lambda count, batch: calls.append((name, "send", count)),
                           lambda count, batch: calls.append((name, "drain", count)))

    results = harness.time_interleaved([side("a"), side("b")], messages=250, batch=100)
    assert len(results) == 2
    assert all(r.send > 0 and r.receive_ack > 0 and r.end_to_end > 0 for r in results)
    assert all(cpu >= 0 for r in results for cpu in r.cpu)
    warm_up, timed = calls[:4], calls[4:]
    assert warm_up == [("a", "send", 100), ("a", "drain", 100),
                       ("b", "send", 100), ("b", "drain", 100)]
    sends = [(name, count) for name, what, count in timed[:6]]
    # Who goes first moves on by one each batch, so a slow moment of the broker lands on
    # both sides alike; and the last, smaller batch is measured on both too.
    assert sends == [("a", 100), ("b", 100), ("b", 100), ("a", 100), ("a", 50), ("b", 50)]
    for name in "ab":
        for what in ("send", "drain"):
            assert sum(count for n, w, count in timed if (n, w) == (name, what)) == 2 * 250


def test_target_allowance_is_the_least_time_the_target_leaves_beyond_the_baseline() -> None:
    def row(backend: str, batch: int, metric: str, baseline: float) -> harness.Row:
        return harness.Row(backend, batch, metric, 1000, baseline / 2, baseline, 0.0, 0.0)

    rows = [row("kafka 100B vs plain", 100, "receive+ack", 100_000.0),
            row("kafka 10240B vs plain", 100, "receive+ack", 20_000.0),
            row("kafka 100B vs plain", 1, "receive+ack", 1_000_000.0),  # batch 1: left out
            row("kafka 100B vs bare", 100, "receive+ack", 1_000_000.0),  # another baseline
            row("kafka 100B vs plain", 100, "send", 50_000.0)]
    line = harness.target_allowance(rows, "plain", 0.95)
    # (1 / 0.95 - 1) / 100,000 msg/s = 0.53 us; / 50,000 msg/s = 1.05 us
    assert line.endswith("beyond plain's time (the least over the sizes, batch > 1): "
                         "send 1.05 us, receive+ack 0.53 us")
    assert harness.target_allowance([], "plain", 0.95).endswith("not measured")


def test_ratio_spread_pairs_each_rounds_sides() -> None:
    def rates(send: float, receive: float) -> harness.Rates:
        return harness.Rates(send, receive, 1.0, (0.0, 0.0, 0.0))

    adapter = [rates(80.0, 30.0), rates(90.0, 45.0)]
    baseline = [rates(100.0, 100.0), rates(100.0, 50.0)]
    # Round 1: 0.80 and 0.30; round 2: 0.90 and 0.90. Best against best would say 0.45.
    assert harness.ratio_spread(adapter, baseline) == "send 0.80-0.90, receive+ack 0.30-0.90"
    assert harness.ratio_spread([], []) == "not measured"
