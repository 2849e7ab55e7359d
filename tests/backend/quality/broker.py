"""The test's own Celery broker, read back as a worker would receive it.

With REDIS_URL (as `make test` runs) a Redis database nobody else uses, the
way tests/live.py claims one; without it, the file-system broker in a folder
of the test's own. This process's producer is pointed at it while the test
runs, so what the services enqueue after the commit lands there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import celery_producer_point_at, redis_database_claim
from worker.celery_app import app


class Broker:
    def queued(self) -> list[tuple[str, list[Any]]]:
        """Take every waiting message off the default queue: (task name, args)."""
        taken: list[tuple[str, list[Any]]] = []
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue("celery")
            while True:
                try:
                    message = queue.get_nowait()
                except queue.Empty:
                    break
                args, _kwargs, _embed = message.decode()
                taken.append((message.headers["task"], list(args)))
                message.ack()
            queue.close()
        return taken

    def work_off(self) -> list[tuple[str, list[Any]]]:
        """Run what is queued here, in this process, as the worker would
        (Celery's own `apply`); what ran."""
        ran = self.queued()
        for name, args in ran:
            app.tasks[name].apply(args=args).get()
        return ran


@pytest.fixture(name="broker")
def broker_fixture(settings: Any, tmp_path: Path) -> Iterator[Broker]:
    options = app.conf.broker_transport_options
    if settings.REDIS_URL:
        url, client = redis_database_claim(settings.REDIS_URL)
    else:
        folder = tmp_path / "broker"
        for part in ("queue", "control", "processed"):
            (folder / part).mkdir(parents=True)
        url, client = "filesystem://", None
        app.conf.broker_transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
        }
    previous = celery_producer_point_at(url)
    try:
        yield Broker()
    finally:
        celery_producer_point_at(previous)
        app.conf.broker_transport_options = options
        if client is not None:
            client.flushdb()
            client.close()
