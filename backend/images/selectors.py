"""Reads for images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from backend.images.models import Image, ImageStack
from backend.images.storage import media_path
from backend.projects.access import visible_or_404
from backend.projects.models import Project

if TYPE_CHECKING:
    from backend.projects.access import AnyUser


def image_list(*, project: Project) -> QuerySet[Image]:
    return project.images.select_related("project", "stack").order_by("id")


def image_for_user(user: AnyUser, image_id: int) -> Image:
    return visible_or_404(
        user,
        Image.objects.select_related("project"),
        image_id,
        via="project",
        what="image",
    )


def stack_for_user(user: AnyUser, stack_id: int) -> ImageStack:
    objects = ImageStack.objects.select_related("project")
    return visible_or_404(user, objects, stack_id, via="project", what="stack")


def stack_planes(*, stack: ImageStack) -> list[tuple[int, int, int]]:
    """(t, z, image id) of every plane of the stack, t major."""
    rows = stack.planes.order_by("t", "z").values_list("t", "z", "id")
    return [(int(t), int(z), int(pk)) for t, z, pk in rows]


def image_display_file(*, image: Image) -> Path:
    """Absolute path of the image's 8-bit RGB display PNG."""
    return media_path(image.display_path)
