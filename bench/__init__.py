"""maskroom's benchmarks: `python -m bench` (or `make bench`) runs them all.

Each module here with a `run() -> list[Table]` function is one benchmark
(bench.common has Table and the shared helpers); `python -m bench click load`
runs only those named. BENCH_QUICK=1 (or --quick) makes a short smoke run.
"""
