"""Export zips do not pile up on the server: their maker or a lead deletes
one (`export_delete`), every export expires EXPORT_KEEP_DAYS after it
finished (`exports_expire`: swept when a new export starts, and by
`manage.py expire_exports` from cron), and a deleted row's zip goes with it
however the row goes (its project deleted too: `zip_remove`, connected in
apps.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backend.datasets.models import Export


def export_expires_at(export: Export) -> datetime | None:
    """When a finished export's zip is removed; None while it is being written
    or when exports are kept (EXPORT_KEEP_DAYS 0)."""
    if export.finished_at is None or settings.EXPORT_KEEP_DAYS <= 0:
        return None
    return export.finished_at + timedelta(days=settings.EXPORT_KEEP_DAYS)


def export_delete(*, export: Export) -> None:
    """Delete an export the caller may see (selectors.export_for_user), in any
    state: one being written stops at its next progress write (run.py)."""
    export.delete()


def exports_expire(*, now: datetime | None = None) -> int:
    """Delete the exports that finished over EXPORT_KEEP_DAYS ago; how many."""
    if settings.EXPORT_KEEP_DAYS <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=settings.EXPORT_KEEP_DAYS)
    _, deleted = Export.objects.filter(finished_at__lt=cutoff).delete()
    return deleted.get(Export._meta.label, 0)


def zip_remove(sender: type[Export], instance: Export, **kwargs: Any) -> None:
    """post_delete: the zip (or the part being written) goes once the deletion commits."""
    for path in (instance.path, instance.path.with_suffix(".part")):
        transaction.on_commit(lambda path=path: path.unlink(missing_ok=True))
