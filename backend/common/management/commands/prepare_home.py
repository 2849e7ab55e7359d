"""`python manage.py prepare_home`: create MASKROOM_HOME and the broker folders.

`make run` calls it first, so that `migrate` can create the SQLite file and
`seed_demo` can queue embeddings before `serve` starts the worker.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from backend.common.home import home_folders_create


class Command(BaseCommand):
    help = "Create MASKROOM_HOME and, in embedded mode, the Celery broker's folders."

    def handle(self, *args: Any, **options: Any) -> None:
        for folder in home_folders_create():
            self.stdout.write(f"ready: {folder}")
