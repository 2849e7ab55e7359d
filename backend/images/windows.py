"""Intensity windows: the fixed range of values the model sees (and the
viewer may show), given as a level (centre) and a width, or by a preset.

The presets are the usual CT windows, in Hounsfield units (level, width).
Without a window each image is stretched from its own 0.5th to 99.5th
percentile (rendering.py), the right default for MR and microscopy.
"""

from __future__ import annotations

import math
from typing import Any

PRESETS: dict[str, tuple[float, float]] = {
    "soft-tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (30.0, 150.0),
}
SETTINGS_KEY = "model_window"


def window_range(window: dict[str, Any]) -> tuple[float, float]:
    """(lowest, highest) value of a cleaned window: level -/+ width / 2."""
    level, width = float(window["level"]), float(window["width"])
    return level - width / 2, level + width / 2


def clean_window(raw: object) -> dict[str, Any] | None:
    """None (each image's own stretch), {"preset": name} or {"level", "width"}
    as a stored window {"preset", "level", "width"}; ValueError saying why not."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError('window is null, {"preset": "lung"} or {"level": -600, "width": 1500}')
    unknown = set(raw) - {"preset", "level", "width"}
    if unknown:
        raise ValueError(f"window has unknown fields: {', '.join(sorted(unknown))}")
    preset = raw.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"window preset {preset!r} is not one of: {', '.join(PRESETS)}")
        return {"preset": preset, "level": PRESETS[preset][0], "width": PRESETS[preset][1]}
    level, width = _number(raw.get("level"), "level"), _number(raw.get("width"), "width")
    if width <= 0:
        raise ValueError(f"window width must be above 0 (got {width:g})")
    return {"preset": None, "level": float(level), "width": float(width)}


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"window {name} must be a finite number")
    return float(value)


def window_from_settings(project_settings: dict | None) -> tuple[float, float] | None:
    """The project's model window as a (lowest, highest) range; None: automatic."""
    raw = (project_settings or {}).get(SETTINGS_KEY)
    try:
        window = clean_window(raw)
    except ValueError:
        return None
    return None if window is None else window_range(window)
