"""manage.py expire_exports: delete the exports that finished over
EXPORT_KEEP_DAYS ago, with their zips (for cron; starting an export sweeps
too)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from backend.datasets.retention import exports_expire


class Command(BaseCommand):
    help = "Delete exports that finished over EXPORT_KEEP_DAYS ago, with their zips."

    def handle(self, *args: Any, **options: Any) -> None:
        count = exports_expire()
        self.stdout.write(f"{count} expired export(s) deleted.")
