"""What exports and splits look like on the wire (docs/api.md, "Datasets")."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from backend.datasets.models import Export
from backend.datasets.retention import export_expires_at


def export_json(export: Export) -> dict[str, Any]:
    total, done = export.total_images, export.done_images
    return {
        "id": export.pk,
        "project": export.project_id,
        "format": export.format,
        "options": export.options,
        "status": export.status,
        "progress": 1.0
        if export.status == Export.Status.DONE
        else (done / total if total else 0.0),
        "done_images": done,
        "total_images": total,
        "size": export.size,
        "error": export.error,
        "created_by": export.created_by.get_username() if export.created_by else None,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
        "expires_at": expires.isoformat() if (expires := export_expires_at(export)) else None,
        "download": (
            reverse("api-export-download", args=[export.pk])
            if export.status == Export.Status.DONE
            else None
        ),
    }
