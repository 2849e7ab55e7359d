"""A decoder graph's sessions for a decode that runs alone and for decodes
that run side by side.

A decode alone gets every thread: its ~200 parallel sections finish sooner
(2 threads: about 22 ms a click on 2 cores, against 33 with one). Decodes
that run at once (a class clicking together) each get one thread: two
one-thread runs get more done than two wide runs whose threads compete for
the same cores and wait for each other at every section (docs/benchmarks.md,
"A class arrives at once"). A run goes wide only when no other run is under
way in this process and fewer than BUSY_RUNS started in the last second: in
a busy period every run is narrow, so that a wide run's spinning threads
never share the cores with another run (three threads on two cores cost
both runs more than they save). One annotator (a click or two a second)
always runs wide.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from worker.engines.sam.decoder.session import Session

BUSY_RUNS = 10  # runs started in the last second from which a period is busy
_lock = threading.Lock()
_running = 0  # graph runs under way in this process, across every decoder
_started: deque[float] = deque()  # when the runs of the last second started


class Lanes:
    def __init__(self, path: Path, threads: int) -> None:
        self.wide = Session(path, threads)
        # Made now, not on the first busy moment: that is when a class arrives.
        self.narrow = Session(path, 1) if threads > 1 else self.wide

    @property
    def inputs(self) -> list[str]:
        return self.wide.inputs

    def run(self, outputs: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        wide = run_starts()
        try:
            return (self.wide if wide else self.narrow).run(outputs, feeds)
        finally:
            run_ends()


def run_starts(now: float | None = None) -> bool:
    """A run starts: whether it may go wide (alone, and not in a busy period)."""
    global _running
    with _lock:
        now = time.monotonic() if now is None else now
        while _started and now - _started[0] > 1.0:
            _started.popleft()
        wide = _running == 0 and len(_started) < BUSY_RUNS
        _started.append(now)
        _running += 1
        return wide


def run_ends() -> None:
    global _running
    with _lock:
        _running -= 1
