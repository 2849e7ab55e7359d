"""`python manage.py serve`: maskroom on one machine, in the foreground.

Runs a Celery worker and the uvicorn web server as child processes, prints the
address and the demo login once the web server answers, and stops both on
Ctrl-C or SIGTERM, or when the web server dies (then exits non-zero). A worker
that dies is started again (backend/common/processes.py: at most 5 times in 10
minutes, after 1, 2, 4 ... s), and the embeddings it left unfinished are
queued again. HOST (default 127.0.0.1) and PORT (default 8000) come from the
environment; listening beyond this machine is refused while the demo account
still has its well-known password.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections

from backend.common.demo import DEMO_PASSWORD, DEMO_USERNAME, demo_password
from backend.common.home import home_folders_create
from backend.common.processes import Child, supervise
from backend.env import env_int, env_str
from backend.segmentation.embeddings import embeddings_requeue_unfinished

# Prompts are a few dozen points: anything near this size is not a prompt.
WS_MAX_BYTES = 1024 * 1024
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Command(BaseCommand):
    help = "Run the web server and a Celery worker together until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=env_str("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=env_int("PORT", 8000))
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=15.0,
            help="seconds to wait for a graceful stop before killing (default 15)",
        )

    def handle(self, *args: Any, host: str, port: int, stop_timeout: float, **options: Any) -> None:
        if host not in _LOOPBACK and demo_password_is_default():
            raise CommandError(
                f"Refusing to listen on {host}: the {DEMO_USERNAME} account still has the "
                f"password {DEMO_PASSWORD!r}, which anyone can read in the README. Change it "
                f"first (python manage.py changepassword {DEMO_USERNAME}), or deactivate the "
                "account in the admin."
            )
        home_folders_create()
        requeued = embeddings_requeue_unfinished()
        if requeued:
            self.stdout.write(f"Queued {requeued} unfinished embedding(s) again.")
        login = demo_login_hint()
        connections.close_all()  # the children open their own

        def announce() -> None:
            url = local_url(host, port)
            self.stdout.write(self.style.SUCCESS(f"maskroom is running at {url}"))
            self.stdout.write(login)
            if host not in _LOOPBACK:
                self.stdout.write(
                    f"Listening on {host}: add this machine's name to ALLOWED_HOSTS "
                    "(comma-separated) to reach it from elsewhere."
                )
            self.stdout.write("Press Ctrl-C to stop.")
            self.stdout.flush()

        def log(line: str) -> None:
            self.stderr.write(f"maskroom: {line}")
            self.stderr.flush()

        outcome = supervise(
            [
                Child("worker", celery_argv(), restart=True),
                Child("web", uvicorn_argv(host, port)),
            ],
            ready=lambda: port_open(host, port),
            on_ready=announce,
            stop_timeout=stop_timeout,
            log=log,
            on_restart=lambda name: requeue_after_restart(log),
        )
        if outcome.exited is not None:
            raise CommandError(
                f"the {outcome.exited} process exited (status {outcome.returncode}); "
                "stopped the others"
            )
        self.stdout.write("maskroom stopped.")


def celery_argv() -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--loglevel=info", "--concurrency=1", "--pool=prefork",
    ]  # fmt: skip


def uvicorn_argv(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "backend.asgi:application",
        "--host", host, "--port", str(port),
        "--ws-max-size", str(WS_MAX_BYTES),
        # X-Forwarded-* are believed from FORWARDED_ALLOW_IPS only (uvicorn's
        # default: 127.0.0.1, a proxy on this machine).
        "--proxy-headers",
        # Masks are small RLE strings: compressing each reply costs a click
        # about 3 ms (both ends) and saves a few hundred bytes.
        "--ws-per-message-deflate", "false",
        "--timeout-graceful-shutdown", "5",
        "--lifespan", "on",  # startup loads the engines ahead of clicks (segmentation/live/warm.py)
    ]  # fmt: skip


def requeue_after_restart(log: Callable[[str], None]) -> None:
    """The restarted worker is the only one: what the dead one left unfinished
    (or lost with its task) is queued again."""
    try:
        requeued = embeddings_requeue_unfinished()
    except DatabaseError as exc:
        log(f"could not queue unfinished embeddings again: {exc}")
        return
    finally:
        connections.close_all()
    if requeued:
        log(f"queued {requeued} unfinished embedding(s) again")


def demo_password_is_default() -> bool:
    """Whether the demo account exists, is active and has the README's password."""
    try:
        user = get_user_model().objects.filter(username=DEMO_USERNAME, is_active=True).first()
    except DatabaseError:
        return False
    return user is not None and user.check_password(DEMO_PASSWORD)


def demo_login_hint() -> str:
    """What to log in with: the demo account if it still has its password."""
    try:
        user = get_user_model().objects.filter(username=DEMO_USERNAME).first()
    except DatabaseError:
        return "The database is not ready: run `python manage.py migrate` first."
    password = demo_password()
    if user is not None and user.check_password(password):
        return f"Log in as {DEMO_USERNAME} / {password}"
    return "Log in with your account (create one: python manage.py createsuperuser)."


def _reachable_host(host: str) -> str:
    """An address that reaches a server bound to `host` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def local_url(host: str, port: int) -> str:
    target = _reachable_host(host)
    return f"http://[{target}]:{port}/" if ":" in target else f"http://{target}:{port}/"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((_reachable_host(host), port), timeout=0.5):
            return True
    except OSError:
        return False
