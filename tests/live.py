"""A live maskroom for end-to-end tests: the real web server and a real Celery
worker as child processes, plus a Chromium page to drive them.

`live_app` starts `uvicorn backend.asgi:application` on a free port and
`celery -A worker.celery_app worker` (prefork, one child) against the test
database that pytest-django created, so rows the test writes (it runs under
`transactional_db`, so they are committed) are what the servers see, and the
other way round. Both share the test's MASKROOM_HOME (media, embeddings,
models). Redis carries the broker and the channel layer: the fixture claims a
Redis database of its own (15 down to 1, marked with a key) and empties it
before and after, so no queued task or group message leaks between tests or
between people sharing one Redis. The test process's own Celery producer and
channel layer are pointed at the same database, so services called from the
test reach the live worker too.

The servers' output goes to files; at teardown they are printed, which pytest
shows only when the test failed. Use it with:

    from tests.live import browser_page_fixture, live_app_fixture  # noqa: F401

Needs PostgreSQL and Redis (`scripts/services.sh start`); skipped without them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.conf import global_settings, settings
from django.db import connections

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
REDIS_CLAIM_KEY = "maskroom:live-app:claim"
# Redis commands a Celery worker blocks in while it waits for tasks.
QUEUE_READERS = {"brpop", "blpop", "blmove", "brpoplpush", "bzpopmin", "xreadgroup"}
_PR_SET_PDEATHSIG = 1
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_marks(timeout_s: int, *, array_warning: bool = False) -> list[pytest.MarkDecorator]:
    """The marks of a module of real-browser tests: browser, slow and a
    timeout; `array_warning` filters numpy 2's __array__ DeprecationWarning,
    which decoding the modules' label images raises."""
    marks = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(timeout_s)]
    if array_warning:
        marks.append(
            pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
        )
    return marks


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.process.returncode}:\n{self.log()}"
            )


@dataclass
class LiveApp:
    """A running maskroom: `url` ends with a slash (http://127.0.0.1:PORT/)."""

    url: str
    home: Path
    redis_url: str
    servers: list[ServerProcess] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(f"===== {s.name} ({s.log_path}) =====\n{s.log()}" for s in self.servers)

    def check_alive(self) -> None:
        for server in self.servers:
            server.check_alive()


# --- environment ----------------------------------------------------------


def missing_component(reason: str) -> None:
    """Skip on a developer's machine without the component; fail under `make
    test` and CI (MASKROOM_REQUIRE_SERVICES=1), where it must be there."""
    if os.environ.get("MASKROOM_REQUIRE_SERVICES") == "1" or os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def live_database_url() -> str:
    """A postgres:// URL for the database pytest-django made (its NAME now)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        missing_component(
            "the live app needs PostgreSQL: set DATABASE_URL (scripts/services.sh start)"
        )
    auth = quote(str(db.get("USER") or ""), safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(str(db["PASSWORD"]), safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    at = "@" if auth else ""
    return f"postgres://{auth}{at}{host}{port}/{quote(str(db['NAME']), safe='')}"


def redis_database_claim(base_url: str) -> tuple[str, Any]:
    """A Redis URL on an empty database nobody else uses, and its client.

    A database is taken when it has a claim key or a client blocked reading
    a queue on it (a worker left over from a killed run would steal tasks).
    Idle connections (a producer's pool) do not count."""
    import redis

    parts = urlsplit(base_url)
    for number in range(15, 0, -1):
        url = urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, ""))
        client = redis.Redis.from_url(url)
        if client.set(REDIS_CLAIM_KEY, os.getpid(), nx=True, ex=3600):
            me = client.client_id()
            others = [
                c
                for c in client.client_list()
                if c.get("db") == str(number)
                and c["id"] != str(me)
                and c.get("cmd", "").lower() in QUEUE_READERS
            ]
            if not others:
                client.flushdb()
                client.set(REDIS_CLAIM_KEY, os.getpid(), ex=3600)
                return url, client
            client.delete(REDIS_CLAIM_KEY)
        client.close()
    raise RuntimeError(f"every Redis database of {base_url} is claimed by another live app")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(*, database_url: str, redis_url: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        MASKROOM_HOME=str(home),
        DJANGO_SETTINGS_MODULE="backend.settings",
        DEBUG="true",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    return env


# --- processes ------------------------------------------------------------


def server_start(name: str, argv: list[str], env: dict[str, str], logs: Path) -> ServerProcess:
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        # A session of its own: teardown signals the whole group (prefork children too).
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return ServerProcess(name=name, process=process, log_path=log_path)


def _die_with_parent() -> None:
    """In the child before exec: Linux sends it SIGTERM if pytest dies first."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def server_stop(server: ServerProcess) -> None:
    process = server.process
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
    # Whatever is left of the group (a worker child, say) goes now.
    _signal_group(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=STOP_TIMEOUT_S)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def wait_until(ready: Any, *, what: str, servers: list[ServerProcess]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for server in servers:
            server.check_alive()
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {START_TIMEOUT_S:.0f} s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def web_argv(port: int) -> list[str]:
    web = [sys.executable, "-m", "uvicorn", "backend.asgi:application"]
    return [*web, "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]


def live_web_add(app: LiveApp, *, logs: Path) -> str:
    """One more web process of the running app (the same database, Redis
    channel layer and home), as a deployment with several would have; its URL."""
    port = free_port()
    env = server_env(database_url=live_database_url(), redis_url=app.redis_url, home=app.home)
    server = server_start(f"web-{port}", web_argv(port), env, logs)
    app.servers.append(server)
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: http_ok(f"{url}accounts/login/"), what="second web server", servers=[server])
    return url


def live_app_start(app: LiveApp, *, database_url: str, logs: Path) -> None:
    """Start the servers into `app.servers` (so a failed start still stops them)."""
    port = int(urlsplit(app.url).port or 0)
    env = server_env(database_url=database_url, redis_url=app.redis_url, home=app.home)
    logs.mkdir(exist_ok=True)
    web = web_argv(port)
    worker = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"]
    worker += ["--pool=prefork", "--concurrency=1", "--loglevel=info", f"--hostname=live-{port}@%h"]
    worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    app.servers.append(server_start("web", web, env, logs))
    app.servers.append(server_start("worker", worker, env, logs))
    wait_until(lambda: http_ok(f"{app.url}accounts/login/"), what="web server", servers=app.servers)
    wait_until(lambda: " ready." in app.servers[1].log(), what="worker", servers=app.servers)


def celery_producer_point_at(broker_url: str) -> str:
    """Send this process's tasks to `broker_url`; returns the previous URL.

    Celery caches its connection pool; dropping it makes the next send connect
    to the new URL (there is no public call for that).
    """
    from worker.celery_app import app

    previous = str(app.conf.broker_url)
    # The dropped pools' idle connections stay open until the process ends;
    # redis_database_claim ignores idle clients, so they block nothing.
    app.conf.broker_url = broker_url
    app._pool = None
    app.amqp._producer_pool = None
    return previous


# --- fixtures -------------------------------------------------------------


@pytest.fixture(name="live_app")
def live_app_fixture(
    transactional_db: None, _maskroom_home: Path, tmp_path: Path, settings: Any
) -> Iterator[LiveApp]:
    if not settings.REDIS_URL:
        missing_component("the live app needs Redis: set REDIS_URL (scripts/services.sh start)")
    database_url = live_database_url()
    redis_url, redis_client = redis_database_claim(settings.REDIS_URL)
    _maskroom_home.mkdir(parents=True, exist_ok=True)
    # Passwords the test sets must be checkable by the servers, which run with
    # the real settings (the suite's fast MD5 hasher is not among them).
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }
    previous_broker = celery_producer_point_at(redis_url)
    app = LiveApp(url=f"http://127.0.0.1:{free_port()}/", home=_maskroom_home, redis_url=redis_url)
    try:
        live_app_start(app, database_url=database_url, logs=tmp_path / "live-logs")
        yield app
    finally:
        for server in reversed(app.servers):
            server_stop(server)
        print(app.logs())
        celery_producer_point_at(previous_broker)
        redis_client.flushdb()
        redis_client.close()


@dataclass
class BrowserPage:
    """A Chromium page with what it logged: console errors and uncaught exceptions."""

    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(name="browser_page")
def browser_page_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BrowserPage]:
    """A fresh Chromium profile in tmp_path; 1280x800 viewport."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        missing_component(f"Chromium is not installed at {CHROMIUM}")
    # Playwright's sync API keeps an event loop running in this thread; the
    # ORM would refuse to run next to it, though nothing here is concurrent.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            accept_downloads=True,
        )
        context.set_default_timeout(30_000)
        page = context.pages[0] if context.pages else context.new_page()
        browser = BrowserPage(page=page)
        page.on("console", lambda msg: browser.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: browser.errors.append(str(exc)))
        try:
            yield browser
        finally:
            print("===== browser console =====\n" + "\n".join(browser.console))
            context.close()
            # The test's ORM calls ran in Playwright's context and opened a
            # connection of their own; left open, it blocks dropping the test database.
            connections.close_all()
    # Every page the test opened kept to the Content-Security-Policy.
    violations = [line for line in browser.console if "Content Security Policy" in line]
    assert not violations, violations
