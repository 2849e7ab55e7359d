"""How a project's images are shown, and which channels its model sees.

Display settings (`Project.settings["display"]`)
    What every member's viewer starts from, per channel index:
    `{"channels": [{"visible": true, "color": "green", "min": 1000.0,
    "max": 1200.0}, ...]}`. `color` is a solid colour or a lookup table
    (COLORS). `min`/`max` are contrast limits in the image's own values;
    None means the viewer's default for each image (the full range for 8-bit
    colour images, else the auto percentile stretch). Members may change them;
    last write wins. They are a view only: the model never sees them.

Model window (`Project.settings["model_window"]`, see windows.py)
    The intensity range the model sees ({"preset", "level", "width"}), e.g.
    a CT's soft-tissue window; none: each image's percentile stretch. Owners
    change it, with the same consequences as a new channel mapping.

Channel mapping (`Project.settings["channel_mapping"]`, see rendering.py)
    Which channel the model sees as red, green and blue. Only owners change
    it; a change throws away every embedding of the project (rows and files,
    computed from the old mapping) and schedules them again, and re-renders
    the display PNGs that show what the model sees.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from backend.common.errors import ServiceError
from backend.images.files.sources import MAX_CHANNELS
from backend.images.models import Image
from backend.images.rendering import (
    SETTINGS_KEY as MAPPING_KEY,
)
from backend.images.rendering import (
    Mapping,
    default_mapping,
    mapping_for_image,
)
from backend.images.tasks import render_displays
from backend.images.windows import SETTINGS_KEY as WINDOW_KEY
from backend.images.windows import clean_window
from backend.projects.models import Project
from backend.projects.permissions import Action, project_require
from backend.segmentation.embeddings import (
    embeddings_discard_for_project,
    embeddings_schedule_for_project,
)

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
def display_settings_set(
    *, project: Project, user: AbstractBaseUser, channels: object
) -> dict[str, Any]:
    """Store the project's display settings (roles that annotate); the stored value."""
    project_require(project=project, user=user, action=Action.DISPLAY)
    cleaned = clean_display_channels(channels)
    locked = Project.objects.select_for_update().get(pk=project.pk)
    locked.settings = {**(locked.settings or {}), DISPLAY_KEY: {"channels": cleaned}}
    locked.save(update_fields=["settings"])
    project.settings = locked.settings
    return display_settings(project=locked)


@transaction.atomic
def display_settings_reset(*, project: Project, user: AbstractBaseUser) -> dict[str, Any]:
    """Forget the project's display settings: every viewer goes back to defaults."""
    project_require(project=project, user=user, action=Action.DISPLAY)
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
    project_require(project=project, user=user, action=Action.CHANNELS)
    cleaned = clean_channel_mapping(mapping)
    locked = Project.objects.select_for_update().get(pk=project.pk)
    if channel_mapping(project=locked) == cleaned:
        return cleaned, 0
    settings = dict(locked.settings or {})
    if cleaned is None:
        settings.pop(MAPPING_KEY, None)
    else:
        settings[MAPPING_KEY] = cleaned
    return cleaned, _model_input_change(project, locked, settings)


def model_window(*, project: Project) -> dict[str, Any] | None:
    """The window the model sees ({"preset", "level", "width"}); None: automatic."""
    try:
        return clean_window((project.settings or {}).get(WINDOW_KEY))
    except ValueError:
        return None


@transaction.atomic
def model_window_set(
    *, project: Project, user: AbstractBaseUser, window: object
) -> tuple[dict[str, Any] | None, int]:
    """Change the intensity window the model sees (owners only); (stored
    window, embeddings scheduled), like a new channel mapping."""
    project_require(project=project, user=user, action=Action.CHANNELS)
    try:
        cleaned = clean_window(window)
    except ValueError as exc:
        raise ServiceError(f"{str(exc)[0].upper()}{str(exc)[1:]}.") from exc
    locked = Project.objects.select_for_update().get(pk=project.pk)
    if model_window(project=locked) == cleaned:
        return cleaned, 0
    settings = dict(locked.settings or {})
    if cleaned is None:
        settings.pop(WINDOW_KEY, None)
    else:
        settings[WINDOW_KEY] = cleaned
    return cleaned, _model_input_change(project, locked, settings)


def _model_input_change(project: Project, locked: Project, settings: dict[str, Any]) -> int:
    """Store settings that change what the model sees: every embedding of
    the project is discarded and scheduled again (the count is returned),
    and the display PNGs are rendered again after the commit."""
    locked.settings = settings
    locked.save(update_fields=["settings"])
    project.settings = locked.settings
    embeddings_discard_for_project(project=locked)
    image_ids = list(locked.images.values_list("pk", flat=True))
    transaction.on_commit(lambda: _displays_render_later(image_ids))
    return embeddings_schedule_for_project(project=locked)


def _displays_render_later(image_ids: list[int]) -> None:
    if image_ids:
        render_displays.delay(image_ids)
