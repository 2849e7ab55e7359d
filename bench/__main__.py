"""`python -m bench [NAME ...] [--quick] [--seconds N]`: run benchmarks, print tables.

Without names, every benchmark module runs: those in ORDER first, then any
other module of this package that has a `run()` (so a new bench/<name>.py
is picked up without editing this file).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
from collections.abc import Callable
from types import ModuleType

import bench
from bench.common import Table, machine_table

ORDER = ["click", "decode", "load", "cache", "encode", "tiling", "editor"]
NOT_BENCHMARKS = {"common", "__main__"}


def discover() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(bench.__path__)} - NOT_BENCHMARKS
    return [n for n in ORDER if n in found] + sorted(found - set(ORDER))


def runner(name: str) -> Callable[[], list[Table]]:
    module: ModuleType = importlib.import_module(f"bench.{name}")
    run = getattr(module, "run", None)
    if not callable(run):
        raise SystemExit(f"bench/{name}.py has no run() function")
    return run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: {discover()})")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (BENCH_QUICK=1)")
    parser.add_argument("--seconds", type=float, help="how long the load benchmark runs")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    if args.seconds is not None:
        os.environ["BENCH_SECONDS"] = str(args.seconds)
    names = args.names or discover()
    unknown = [n for n in names if n not in discover()]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; there are {', '.join(discover())}")
    print(machine_table().render(), flush=True)
    failed = []
    for name in names:
        start = time.monotonic()
        print(f"## {name}\n", flush=True)
        try:
            for table in runner(name)():
                print(table.render(), flush=True)
        except Exception as exc:  # one broken benchmark should not hide the others
            failed.append(name)
            print(f"{name} failed: {type(exc).__name__}: {exc}\n", flush=True)
            import traceback

            traceback.print_exc()
        print(f"({name}: {time.monotonic() - start:.0f} s)\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
