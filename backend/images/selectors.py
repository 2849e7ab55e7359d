"""Reads for images."""

from __future__ import annotations

from pathlib import Path

from django.db.models import QuerySet

from backend.images.models import Image
from backend.images.storage import media_path
from backend.projects.models import Project


def image_list(*, project: Project) -> QuerySet[Image]:
    return project.images.select_related("project").order_by("id")


def image_display_file(*, image: Image) -> Path:
    """Absolute path of the image's 8-bit RGB display PNG."""
    return media_path(image.display_path)
