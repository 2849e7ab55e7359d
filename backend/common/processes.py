"""Run a few child processes as one unit: if one ends, or a stop signal
arrives, all of them are stopped; a child marked `restart` is started again
instead, after a growing wait (1, 2, 4 ... 30 s), up to MAX_RESTARTS times in
RESTART_WINDOW_SECONDS, and said so in the log.

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


MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 600.0
MAX_RESTART_DELAY_SECONDS = 30.0


@dataclass(frozen=True)
class Child:
    name: str
    argv: list[str]
    restart: bool = False  # started again when it exits, within the limits above


def restart_delay(restarts: int) -> float:
    """The wait before the `restarts`-th restart in the window (1-based)."""
    return float(min(2 ** (restarts - 1), MAX_RESTART_DELAY_SECONDS))


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
    log: Callable[[str], None] = print,
    on_restart: Callable[[str], None] = lambda name: None,
) -> Outcome:
    """Start the children and block until one that is not restarted exits or
    SIGINT/SIGTERM arrives; then stop them all. `on_ready` runs once, the
    first time `ready()` is true; `on_restart(name)` after each restart."""
    child_env = dict(os.environ if env is None else env)
    requests = _StopRequests()
    with requests.installed():
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for child in children:
                procs[child.name] = _start(child, child_env)
            restarter = _Restarter(children, child_env, log=log, on_restart=on_restart)
            return _watch(procs, requests, restarter, ready=ready, on_ready=on_ready)
        finally:
            _stop(procs, requests, stop_timeout)


class _Restarter:
    """Which exited children to start again, and when."""

    def __init__(
        self,
        children: Sequence[Child],
        env: dict[str, str],
        *,
        log: Callable[[str], None],
        on_restart: Callable[[str], None],
    ) -> None:
        self.children = {child.name: child for child in children}
        self.env = env
        self.log = log
        self.on_restart = on_restart
        self.history: dict[str, list[float]] = {}
        self.due: dict[str, float] = {}

    def exited(self, name: str, proc: subprocess.Popen[bytes]) -> bool:
        """Note that `name` exited; whether it will be restarted."""
        if name in self.due:
            return True
        if not self.children[name].restart:
            return False
        now = time.monotonic()
        recent = [t for t in self.history.get(name, []) if now - t < RESTART_WINDOW_SECONDS]
        if len(recent) >= MAX_RESTARTS:
            self.log(
                f"the {name} process exited (status {proc.returncode}) after {len(recent)} "
                f"restarts in {RESTART_WINDOW_SECONDS / 60:.0f} minutes: stopping everything"
            )
            return False
        self.history[name] = [*recent, now]
        delay = restart_delay(len(recent) + 1)
        self.due[name] = now + delay
        self.log(
            f"the {name} process exited (status {proc.returncode}); restarting it in "
            f"{delay:.0f} s (restart {len(recent) + 1} of {MAX_RESTARTS} allowed in "
            f"{RESTART_WINDOW_SECONDS / 60:.0f} minutes)"
        )
        # What the dead process left in its group (a Celery pool) goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return True

    def start_due(self, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        now = time.monotonic()
        for name, when in list(self.due.items()):
            if when <= now:
                del self.due[name]
                procs[name] = _start(self.children[name], self.env)
                self.log(f"restarted the {name} process (pid {procs[name].pid})")
                self.on_restart(name)


def _watch(
    procs: dict[str, subprocess.Popen[bytes]],
    requests: _StopRequests,
    restarter: _Restarter,
    *,
    ready: Callable[[], bool],
    on_ready: Callable[[], None],
) -> Outcome:
    announced = False
    while True:
        if requests.signals:
            return Outcome(signum=requests.signals[0])
        for name, proc in procs.items():
            if proc.poll() is not None and not restarter.exited(name, proc):
                return Outcome(exited=name, returncode=proc.returncode)
        restarter.start_due(procs)
        if not announced and ready():
            on_ready()
            announced = True
        time.sleep(0.2)
