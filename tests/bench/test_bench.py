"""The benchmark harness's own parts (no server, no model): discovery, tables,
statistics, options. The benchmarks themselves run with `make bench`."""

from __future__ import annotations

import pytest

from bench.__main__ import discover
from bench.common import Stats, Table, options


def test_it_discovers_every_benchmark_module() -> None:
    names = discover()
    assert names[:4] == ["click", "decode", "load", "cache"]
    assert "common" not in names and "__main__" not in names


def test_a_table_renders_as_markdown() -> None:
    table = Table("Title", ["who", "p50 ms"], notes=["a note"])
    table.add("maskroom", 12.345)
    table.add("reference", 0.0423)
    text = table.render()
    assert text.startswith("### Title\n")
    assert "| maskroom  | 12.3   |" in text
    assert "| reference | 0.042  |" in text
    assert text.rstrip().endswith("- a note")


def test_stats_are_percentiles_of_the_sample() -> None:
    stats = Stats.of([float(v) for v in range(1, 101)])
    assert stats.n == 100 and stats.max == 100
    assert stats.p50 == pytest.approx(50.5) and stats.p99 == pytest.approx(99.01)
    assert Stats.of([]).n == 0


def test_quick_mode_shortens_the_load_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_SECONDS", raising=False)
    monkeypatch.setenv("BENCH_QUICK", "1")
    assert options().quick and options().seconds == 10
    monkeypatch.setenv("BENCH_SECONDS", "42")
    assert options().seconds == 42
    monkeypatch.delenv("BENCH_QUICK")
    assert not options().quick
