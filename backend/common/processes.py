"""Run a few child processes as one unit: if one ends, or a stop signal
arrives, all of them are stopped.

Each child gets its own process group, so a Ctrl-C in the terminal reaches only
the supervisor, which forwards one SIGTERM to each child (a graceful stop) and
kills the child's whole group if it has not ended in time. On Linux a child
also receives SIGTERM when the supervisor dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType

_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]


@dataclass(frozen=True)
class Outcome:
    """Why supervision ended: a stop signal (signum) or a child that exited."""

    signum: int | None = None
    exited: str | None = None
    returncode: int | None = None


class _StopRequests:
    """Counts SIGINT/SIGTERM while installed; the second one hurries the stop."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopRequests]:
        for signum in _STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for previous_signum, handler in self._previous.items():
                signal.signal(previous_signum, handler)  # type: ignore[arg-type]


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux for SIGTERM when the parent dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(child: Child, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(child.argv, env=env, process_group=0, preexec_fn=_die_with_parent)


def _stop(
    procs: dict[str, subprocess.Popen[bytes]], requests: _StopRequests, timeout: float
) -> None:
    """SIGTERM each child, wait up to `timeout` seconds (cut short by another
    stop signal), then SIGKILL what remains of each child's process group."""
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    asked = len(requests.signals)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(requests.signals) == asked:
        if all(proc.poll() is not None for proc in procs.values()):
            break
        time.sleep(0.1)
    for proc in procs.values():
        # The group may still hold grandchildren (Celery's pool) after the
        # child itself has gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def supervise(
    children: Sequence[Child],
    *,
    ready: Callable[[], bool],
    on_ready: Callable[[], None],
    stop_timeout: float,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Start the children and block until one exits or SIGINT/SIGTERM arrives;
    then stop them all. `on_ready` runs once, the first time `ready()` is true."""
    child_env = dict(os.environ if env is None else env)
    requests = _StopRequests()
    with requests.installed():
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for child in children:
                procs[child.name] = _start(child, child_env)
            return _watch(procs, requests, ready=ready, on_ready=on_ready)
        finally:
            _stop(procs, requests, stop_timeout)


def _watch(
    procs: dict[str, subprocess.Popen[bytes]],
    requests: _StopRequests,
    *,
    ready: Callable[[], bool],
    on_ready: Callable[[], None],
) -> Outcome:
    announced = False
    while True:
        if requests.signals:
            return Outcome(signum=requests.signals[0])
        for name, proc in procs.items():
            if proc.poll() is not None:
                return Outcome(exited=name, returncode=proc.returncode)
        if not announced and ready():
            on_ready()
            announced = True
        time.sleep(0.2)
