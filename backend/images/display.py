"""How a project's images are shown, and which channels its model sees.

Display settings (`Project.settings["display"]`)
    What every member's viewer starts from, per channel index:
    `{"channels": [{"visible": true, "color": "green", "min": 1000.0,
    "max": 1200.0}, ...]}`. `color` is a solid colour or a lookup table
    (COLORS). `min`/`max` are contrast limits in the image's own values;
    None means the viewer's default for each image (the full range for 8-bit
    colour images, else the auto percentile stretch). Members may change them;
    last write wins. They are a view only: the model never sees them.

Channel mapping (`Project.settings["channel_mapping"]`, see rendering.py)
    Which channel the model sees as red, green and blue. Only owners change
    it; a change throws away every embedding of the project (rows and files,
    computed from the old mapping) and schedules them again, and re-renders
    the display PNGs that show what the model sees.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from PIL import Image as PILImage

from backend.common.errors import ServiceError
from backend.images.decoding import MAX_CHANNELS
from backend.images.models import Image
from backend.images.rendering import (
    SETTINGS_KEY as MAPPING_KEY,
)
from backend.images.rendering import (
    Mapping,
    default_mapping,
    image_planes,
    mapping_for_image,
    planes_to_rgb8,
)
from backend.images.storage import DISPLAY_NAME, media_path
from backend.projects.models import Project
from backend.projects.selectors import project_ensure_owner

logger = logging.getLogger(__name__)

DISPLAY_KEY = "display"
SOLID_COLORS = ("grey", "red", "green", "blue", "cyan", "magenta", "yellow")
LUTS = ("fire", "viridis")
COLORS = SOLID_COLORS + LUTS


# --- display settings -------------------------------------------------------


def display_settings(*, project: Project) -> dict[str, Any]:
    """The project's stored display settings; `{"channels": []}` when none."""
    stored = (project.settings or {}).get(DISPLAY_KEY)
    if not isinstance(stored, dict) or not isinstance(stored.get("channels"), list):
        return {"channels": []}
    return {"channels": stored["channels"]}


def _clean_limit(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ServiceError(f"{where} must be a finite number or null.")
    return float(value)


def _clean_channel(index: int, raw: object) -> dict[str, Any]:
    where = f"channels[{index}]"
    if not isinstance(raw, dict):
        raise ServiceError(f"{where} must be an object with visible, color, min and max.")
    unknown = set(raw) - {"visible", "color", "min", "max"}
    if unknown:
        raise ServiceError(f"{where} has unknown fields: {', '.join(sorted(unknown))}.")
    visible = raw.get("visible", True)
    if not isinstance(visible, bool):
        raise ServiceError(f"{where}.visible must be true or false.")
    color = raw.get("color")
    if color not in COLORS:
        raise ServiceError(f"{where}.color must be one of: {', '.join(COLORS)}.")
    low = _clean_limit(raw.get("min"), f"{where}.min")
    high = _clean_limit(raw.get("max"), f"{where}.max")
    if (low is None) != (high is None):
        raise ServiceError(f"{where}: give both min and max, or neither (automatic).")
    if low is not None and high is not None and low >= high:
        raise ServiceError(f"{where}: min ({low:g}) must be below max ({high:g}).")
    return {"visible": visible, "color": color, "min": low, "max": high}


def clean_display_channels(channels: object) -> list[dict[str, Any]]:
    """Checked per-channel settings; ServiceError naming the first problem."""
    if not isinstance(channels, list):
        raise ServiceError("channels must be a list of per-channel settings.")
    if len(channels) > MAX_CHANNELS:
        raise ServiceError(f"At most {MAX_CHANNELS} channels ({len(channels)} given).")
    return [_clean_channel(i, raw) for i, raw in enumerate(channels)]


@transaction.atomic
def display_settings_set(*, project: Project, channels: object) -> dict[str, Any]:
    """Store the project's display settings (any member may); the stored value."""
    cleaned = clean_display_channels(channels)
    locked = Project.objects.select_for_update().get(pk=project.pk)
    locked.settings = {**(locked.settings or {}), DISPLAY_KEY: {"channels": cleaned}}
    locked.save(update_fields=["settings"])
    project.settings = locked.settings
    return display_settings(project=locked)


@transaction.atomic
def display_settings_reset(*, project: Project) -> dict[str, Any]:
    """Forget the project's display settings: every viewer goes back to defaults."""
    locked = Project.objects.select_for_update().get(pk=project.pk)
    settings = dict(locked.settings or {})
    settings.pop(DISPLAY_KEY, None)
    locked.settings = settings
    locked.save(update_fields=["settings"])
    project.settings = locked.settings
    return display_settings(project=locked)


# --- the model's channel mapping --------------------------------------------


def channel_mapping(*, project: Project) -> Mapping | None:
    """The project's stored mapping (None: each image's default)."""
    raw = (project.settings or {}).get(MAPPING_KEY)
    return list(raw) if isinstance(raw, list) else None


def image_model_mapping(image: Image) -> Mapping:
    """The [red, green, blue] channels the model sees for this image."""
    return mapping_for_image(image) or default_mapping(image.channels)


def clean_channel_mapping(mapping: object) -> Mapping | None:
    """A project mapping: three channel indices (0..7) or None, not all None; or None."""
    if mapping is None:
        return None
    if not isinstance(mapping, list) or len(mapping) != 3:
        raise ServiceError("mapping lists three entries, for red, green and blue: [0, 1, null].")
    for colour, entry in zip(("red", "green", "blue"), mapping, strict=True):
        if entry is None:
            continue
        if isinstance(entry, bool) or not isinstance(entry, int) or not 0 <= entry < MAX_CHANNELS:
            raise ServiceError(
                f"{colour} must be a channel index from 0 to {MAX_CHANNELS - 1}, or null."
            )
    if all(entry is None for entry in mapping):
        raise ServiceError("The model needs at least one channel: all three are null.")
    return list(mapping)


@transaction.atomic
def channel_mapping_set(
    *, project: Project, user: AbstractBaseUser, mapping: object
) -> tuple[Mapping | None, int]:
    """Change which channels the model sees (owners only); (stored mapping,
    embeddings scheduled). Unchanged: nothing happens and 0 are scheduled."""
    from backend.segmentation.services import embeddings_schedule_for_project

    project_ensure_owner(project=project, user=user, action="change the channels the model sees")
    cleaned = clean_channel_mapping(mapping)
    locked = Project.objects.select_for_update().get(pk=project.pk)
    if channel_mapping(project=locked) == cleaned:
        return cleaned, 0
    settings = dict(locked.settings or {})
    if cleaned is None:
        settings.pop(MAPPING_KEY, None)
    else:
        settings[MAPPING_KEY] = cleaned
    locked.settings = settings
    locked.save(update_fields=["settings"])
    project.settings = locked.settings
    _embeddings_discard(project=locked)
    image_ids = list(locked.images.values_list("pk", flat=True))
    transaction.on_commit(lambda: _displays_render_later(image_ids))
    return cleaned, embeddings_schedule_for_project(project=locked)


def _embeddings_discard(*, project: Project) -> None:
    """Delete every embedding of the project's images now, and their files once
    the transaction commits (before the new ones are enqueued: on_commit runs
    callbacks in order)."""
    from backend.segmentation.models import Embedding

    embeddings = Embedding.objects.filter(image__project=project)
    stored = list(embeddings.values_list("engine_key", "image_id"))
    embeddings.delete()
    transaction.on_commit(lambda: _embedding_files_delete(stored))


def _embedding_files_delete(stored: Sequence[tuple[str, int]]) -> None:
    from django.conf import settings

    from worker import embedding_store

    for engine_key, image_id in stored:
        try:
            embedding_store.delete(settings.EMBEDDINGS_ROOT, engine_key, image_id)
        except (OSError, ValueError):
            logger.exception("could not delete embedding %s of image %s", engine_key, image_id)
    # Every web process's decode cache sees the files go (EmbeddingCache checks
    # the stored version on each hit), so none answers from the old mapping.


def _displays_render_later(image_ids: list[int]) -> None:
    from backend.images.tasks import render_displays

    if image_ids:
        render_displays.delay(image_ids)


def displays_render(*, image_ids: Sequence[int]) -> None:
    """Render the display PNGs of these images again with their project's
    mapping (what the model sees); images gone meanwhile are skipped."""
    for image in Image.objects.filter(pk__in=image_ids).select_related("project"):
        try:
            rgb = planes_to_rgb8(image_planes(image), mapping_for_image(image))
            _display_replace(image, rgb)
        except FileNotFoundError:
            continue  # deleted meanwhile


def _display_replace(image: Image, rgb: Any) -> None:
    """Write the display PNG beside the old one, then swap: readers never see half a file."""
    final = media_path(image.display_path)
    temp = final.with_name(f".{DISPLAY_NAME}.tmp-{os.getpid()}")
    try:
        PILImage.fromarray(rgb).save(temp, format="PNG", compress_level=3)
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
