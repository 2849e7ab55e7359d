"""Planes to 8-bit RGB: what the browser shows and what the model sees.

`planes_to_rgb8` is the single definition of how an image's channels become
RGB. The display PNG made at upload and the input of the embedding (through
`image_model_rgb`) both come from it, so the annotator sees what SAM sees.

Channel to RGB mapping
    `mapping` lists, for red, green and blue in that order, the index of the
    channel (plane) shown in that colour, or None for black. Without one:

    - 1 channel:   [0, 0, 0]        grey (the channel on R, G and B)
    - 2 channels:  [0, 1, None]     channel 0 red, channel 1 green, blue black
    - 3+ channels: [0, 1, 2]        channels 0, 1, 2 on R, G, B; channels 3 and
                                    up are not shown unless a mapping picks them

    A project may store its own as `Project.settings["channel_mapping"]`; an
    entry that does not fit an image (index out of range) makes that image
    fall back to the default above.

Intensities
    - With a window (the project's model window, windows.py) every channel
      that is not 8-bit colour is mapped linearly from the window's lowest
      to its highest value (a CT in Hounsfield units through the lung or the
      soft-tissue window). Otherwise:
    - 8-bit colour (uint8 planes with 3 or more channels, e.g. RGB PNG, JPEG
      or TIFF) passes through unchanged: values are already display values.
    - Everything else (grey uint8, 12/16-bit, signed, float) is stretched
      channel by channel: lo and hi are the 0.5th and 99.5th percentiles of the
      channel's finite values, and a value v becomes
      round(clip((v - lo) / (hi - lo), 0, 1) * 255). The percentiles are taken
      on a regular grid subsample of at most 2**20 pixels (deterministic and
      fast on large images). If hi <= lo (a mostly flat channel) the min and
      max are used instead; a constant channel is black. NaN becomes 0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image as PILImage

from backend.images.models import Image
from backend.images.storage import DISPLAY_NAME, media_path
from backend.images.windows import window_from_settings

Mapping = list[int | None]
Window = tuple[float, float]  # (lowest, highest) value shown

PERCENTILE_LOW = 0.5
PERCENTILE_HIGH = 99.5
SAMPLE_PIXELS = 2**20
SETTINGS_KEY = "channel_mapping"


def default_mapping(channels: int) -> Mapping:
    if channels == 1:
        return [0, 0, 0]
    return [i if i < channels else None for i in range(3)]


def validate_mapping(mapping: object, channels: int) -> Mapping:
    """`mapping` as a checked list of three channel indices or None; else ValueError."""
    if not isinstance(mapping, list | tuple) or len(mapping) != 3:
        raise ValueError("a channel mapping lists three entries: red, green, blue")
    for entry in mapping:
        if entry is None:
            continue
        if isinstance(entry, bool) or not isinstance(entry, int) or not 0 <= entry < channels:
            raise ValueError(f"channel {entry!r} does not exist (the image has {channels})")
    return list(mapping)


def planes_to_rgb8(
    planes: np.ndarray, mapping: Mapping | None = None, window: Window | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 RGB of (C, H, W) planes, as described in the module docstring."""
    if planes.ndim != 3 or planes.shape[0] < 1:
        raise ValueError(f"planes must be (C, H, W), got shape {planes.shape}")
    channels, height, width = planes.shape
    mapping = default_mapping(channels) if mapping is None else validate_mapping(mapping, channels)
    passthrough = planes.dtype == np.uint8 and channels >= 3
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rendered: dict[int, np.ndarray] = {}
    for colour, channel in enumerate(mapping):
        if channel is None:
            continue
        if channel not in rendered:
            plane = planes[channel]
            rendered[channel] = plane if passthrough else stretch_to_uint8(plane, window)
        rgb[..., colour] = rendered[channel]
    return rgb


def stretch_to_uint8(plane: np.ndarray, window: Window | None = None) -> np.ndarray:
    """(H, W) uint8 of one channel, stretched over `window` (lowest, highest)
    or else from its 0.5th to 99.5th percentile."""
    lo, hi = window if window is not None else _stretch_range(plane)
    if hi <= lo:
        return np.zeros(plane.shape, dtype=np.uint8)
    scaled = (plane.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    np.nan_to_num(scaled, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return np.rint(scaled).astype(np.uint8)


def _stretch_range(plane: np.ndarray) -> tuple[float, float]:
    height, width = plane.shape
    step = max(1, math.ceil(math.sqrt(height * width / SAMPLE_PIXELS)))
    sample = plane[::step, ::step].astype(np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(sample, [PERCENTILE_LOW, PERCENTILE_HIGH])
    if hi <= lo:
        lo, hi = sample.min(), sample.max()
    return float(lo), float(hi)


def mapping_from_settings(project_settings: dict | None, channels: int) -> Mapping | None:
    """A project's stored channel mapping if it fits `channels`, else None (the default)."""
    raw = (project_settings or {}).get(SETTINGS_KEY)
    if raw is None:
        return None
    try:
        return validate_mapping(raw, channels)
    except ValueError:
        return None


def mapping_for_image(image: Image) -> Mapping | None:
    return mapping_from_settings(image.project.settings, image.channels)


def image_planes(image: Image) -> np.ndarray:
    """The image's stored (C, H, W) planes in their original dtype."""
    return np.load(media_path(image.planes_path), allow_pickle=False)


def image_model_rgb(image: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB the segmentation model embeds: same as the display PNG."""
    return planes_to_rgb8(image_planes(image), mapping_for_image(image), window_for_image(image))


def window_for_image(image: Image) -> Window | None:
    return window_from_settings(image.project.settings)


# --- the display PNGs, rendered again when the channel mapping changes -------


def displays_render(*, image_ids: Sequence[int]) -> None:
    """Render the display PNGs of these images again with their project's
    mapping (what the model sees); images gone meanwhile are skipped."""
    for image in Image.objects.filter(pk__in=image_ids).select_related("project"):
        try:
            rgb = image_model_rgb(image)
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
