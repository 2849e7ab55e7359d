"""`python manage.py serve`: the web server and a Celery worker as one unit.

Each test starts the real command in embedded mode (SQLite, file-system broker)
under its own MASKROOM_HOME and PORT, and looks at the real child processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.common.demo import DEMO_PASSWORD, DEMO_USERNAME
from tests.paths import REPO

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 40

pytestmark = pytest.mark.slow


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    home: Path
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _embedded_env(home: Path, port: int | None = None) -> dict[str, str]:
    """The environment `make run` gives: no PostgreSQL, no Redis, DEBUG off,
    plain HTTP, the key kept in the home (scripts/secret_key.py)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "HOST", "PORT", "SECRET_KEY", "DEMO_PASSWORD"}
    }
    env.update(MASKROOM_HOME=str(home), DEBUG="false", HTTPS="false", PYTHONUNBUFFERED="1")
    if port is not None:
        env["PORT"] = str(port)
    key = subprocess.run(
        [sys.executable, "scripts/secret_key.py"], cwd=REPO, env=env, capture_output=True
    )
    assert key.returncode == 0, key.stderr
    return env


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid for every process on the machine (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after its ")".
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def _descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, with its command line."""
    parents = _parent_pids()
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_until_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return []
        time.sleep(0.2)
    return [pid for pid in pids if _alive(pid)]


def _http_status(url: str) -> int | None:
    """The HTTP status the server answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _health(url: str) -> dict[str, object]:
    """The health report, whatever its HTTP status (503 while degraded)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return {}
    report = json.loads(body)
    assert isinstance(report, dict)
    return report


def _pid_of(processes: dict[int, str], needle: str) -> int:
    matches = [pid for pid, cmd in processes.items() if needle in cmd]
    assert matches, f"no {needle!r} process among {processes}"
    return min(matches)  # the main process started before its pool


def test_prepare_home_creates_the_home_and_broker_folders(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    result = _manage("prepare_home", env=_embedded_env(home))

    assert result.returncode == 0, result.stderr
    for folder in ("broker/queue", "broker/control", "broker/processed"):
        assert (home / folder).is_dir(), folder


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("embedded") / "home"
    home.mkdir()
    env = _embedded_env(home)
    result = _manage("migrate", "--noinput", "-v", "0", env=env)
    assert result.returncode == 0, result.stderr
    demo = (
        "from django.contrib.auth.models import User; User.objects.create_user({!r}, password={!r})"
    )
    result = _manage("shell", "-c", demo.format(DEMO_USERNAME, DEMO_PASSWORD), env=env)
    assert result.returncode == 0, result.stderr
    return home


@pytest.fixture
def served(embedded_home: Path, tmp_path: Path) -> Iterator[Served]:
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve"],
            cwd=REPO,
            env=_embedded_env(embedded_home, port),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own, like a terminal's job
        )
    served = Served(process=process, home=embedded_home, port=port, log=log)
    try:
        _wait_until_serving(served)
        yield served
    finally:
        leftovers = list(_descendants(process.pid))
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in leftovers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _wait_until_serving(served: Served) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            pytest.fail(f"serve exited with {served.process.returncode}:\n{served.output()}")
        url = f"http://127.0.0.1:{served.port}/api/health/"
        if _http_status(url) is not None and "Press Ctrl-C" in served.output():
            return
        time.sleep(0.5)
    pytest.fail(f"serve did not answer within {START_TIMEOUT_S}s:\n{served.output()}")


def test_it_serves_http_on_port_with_data_in_home(served: Served) -> None:
    assert _http_status(f"http://127.0.0.1:{served.port}/api/health/") is not None
    assert f"http://127.0.0.1:{served.port}/" in served.output()
    assert f"Log in as {DEMO_USERNAME} / {DEMO_PASSWORD}" in served.output()
    assert (served.home / "db.sqlite3").is_file()
    assert (served.home / "broker" / "queue").is_dir()
    assert (served.home / "broker" / "control").is_dir()


def test_its_health_check_finds_database_broker_and_worker(served: Served) -> None:
    url = f"http://127.0.0.1:{served.port}/api/health/"
    deadline = time.monotonic() + 60
    report: dict[str, object] = {}
    while time.monotonic() < deadline:
        report = _health(url)
        if report.get("status") == "ok":
            break
        time.sleep(1)
    assert report.get("status") == "ok", report
    assert report["checks"] == {"database": True, "broker": True, "worker": True}


def test_the_container_health_check_accepts_it(served: Served) -> None:
    env = _embedded_env(served.home, served.port)
    check = subprocess.run(
        [sys.executable, "scripts/healthcheck.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_it_stops_web_server_and_worker_on_signal(served: Served, signum: int) -> None:
    processes = _descendants(served.process.pid)
    _pid_of(processes, "uvicorn")
    _pid_of(processes, "celery")

    if signum == signal.SIGINT:
        os.killpg(served.process.pid, signum)  # what Ctrl-C in a terminal does
    else:
        served.process.send_signal(signum)

    assert served.process.wait(timeout=STOP_TIMEOUT_S) == 0, served.output()
    # serve waits for its children: none outlives it by more than a moment.
    assert _wait_until_gone(list(processes), timeout=2) == []
    assert "maskroom stopped." in served.output()


def test_it_restarts_a_worker_that_dies_and_says_so(served: Served) -> None:
    first = _pid_of(_descendants(served.process.pid), "celery")
    os.kill(first, signal.SIGKILL)

    deadline = time.monotonic() + 60
    again = None
    while time.monotonic() < deadline:
        assert served.process.poll() is None, served.output()
        workers = [p for p, cmd in _descendants(served.process.pid).items() if "celery" in cmd]
        again = min(workers) if workers and first not in workers else None
        if again is not None and "restarted the worker process" in served.output():
            break
        time.sleep(0.5)
    assert again is not None, served.output()
    assert "the worker process exited (status -9); restarting it in 1 s" in served.output()
    url = f"http://127.0.0.1:{served.port}/api/health/"
    while time.monotonic() < deadline and _health(url).get("status") != "ok":
        time.sleep(1)
    assert _health(url)["checks"] == {"database": True, "broker": True, "worker": True}


def test_its_pages_show_no_debug_information(served: Served) -> None:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{served.port}/no-such-page/", timeout=10)
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace")
        assert error.code == 404
    assert "URLconf" not in body and "DEBUG = True" not in body and "Traceback" not in body
    secret = (served.home / "secret_key").stat()
    assert secret.st_mode & 0o077 == 0  # readable by its owner only


def test_it_refuses_to_listen_on_the_network_with_the_demo_password(
    embedded_home: Path,
) -> None:
    env = _embedded_env(embedded_home, _free_port())
    env["HOST"] = "0.0.0.0"
    result = _manage("serve", env=env)
    assert result.returncode != 0
    assert "still has the password 'demo-password'" in result.stderr
    assert "changepassword demo" in result.stderr


def test_it_stops_the_worker_and_fails_when_the_web_server_dies(served: Served) -> None:
    processes = _descendants(served.process.pid)
    os.kill(_pid_of(processes, "uvicorn"), signal.SIGKILL)

    assert served.process.wait(timeout=STOP_TIMEOUT_S) != 0
    assert _wait_until_gone(list(processes), timeout=2) == []
    assert "the web process exited" in served.output()


def test_its_websocket_replies_go_uncompressed(served: Served) -> None:
    """Masks are short RLE strings: per-message deflate would cost each click
    about 3 ms at both ends (docs/benchmarks.md), so the server declines it."""
    request = (
        f"GET /ws/images/1/ HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        f"Origin: http://127.0.0.1:{served.port}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as connection:
        connection.sendall(request.encode())
        head = connection.recv(4096).decode("latin-1").split("\r\n\r\n")[0].lower()
    assert head.startswith("http/1.1 101"), head
    assert "sec-websocket-extensions" not in head, head
