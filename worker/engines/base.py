"""The interface every segmentation engine implements.

The heavy/light split of SAM: `embed` runs once per image on the worker and
its result is stored on disk; `decode` runs for every prompt in the web
process, from a cached embedding, and must be cheap.

Frames: `xy_image` is full-resolution image pixels (x right, y down); each
tile covers `[x0, x0 + width) x [y0, y0 + height)` of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Tile:
    """A region of the image that one embedding covers, in image pixels."""

    x0: int
    y0: int
    width: int
    height: int


@dataclass
class EmbeddingSet:
    """An image's embedding: one array per tile plus what is needed to decode.

    `arrays[i]` belongs to `tiles[i]`; for SAM it is a (256, 64, 64) float16
    feature map. `meta` holds engine-specific scalars (JSON-serialisable).
    """

    engine_key: str
    image_height: int
    image_width: int
    tiles: list[Tile]
    arrays: list[np.ndarray]
    meta: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """Accumulated prompts for one object: points (x, y, 1|0) and a box (x0, y0, x1, y1)."""

    points_xy_image: tuple[tuple[float, float, int], ...] = ()
    box_xyxy_image: tuple[float, float, float, float] | None = None


@dataclass
class MaskResult:
    """A decoded mask as a crop placed at (x0, y0) in the image frame.

    `mask_crop` is a bool (h, w) array; `logits` is the engine's low-resolution
    state to feed back into the next decode of the same object (SAM: 1x256x256).
    """

    mask_crop: np.ndarray
    x0: int
    y0: int
    score: float
    logits: np.ndarray | None = None
    tile_index: int = 0


class Engine(Protocol):
    """A segmentation engine: one object per process, loaded once."""

    key: str  # names the model and its version, e.g. "vit_b-01ec64d2" or "classical-1"
    embedding_key: str  # the key of the embeddings it makes and reads (EngineSpec.embedding_key)
    description: str  # shown to users, e.g. "SAM vit_b (sam_vit_b)"

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        """Compute the embedding of an (H, W, 3) uint8 image. Heavy; worker only."""
        ...

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        """Decode one mask for `prompt`, refining `previous` when given. Cheap."""
        ...


@runtime_checkable
class Prepares(Protocol):
    """An engine that keeps work per image for its decodes (SAM's decoder
    keeps each image's image-side tensors) and can do it ahead of the first."""

    def prepare(self, embedding: EmbeddingSet) -> None:
        """Do the per-image work of `embedding`'s decodes now, so that its
        first click is as quick as the next ones."""
        ...


def tight_crop(mask: np.ndarray, x0: int, y0: int) -> tuple[np.ndarray, int, int]:
    """Shrink a bool mask placed at (x0, y0) to the bbox of its pixels (a copy)."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return np.zeros((0, 0), dtype=bool), 0, 0
    xs = np.flatnonzero(mask.any(axis=0))
    crop = mask[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
    # A copy in the mask's own memory order (column-major masks stay so).
    return crop.copy(order="K"), x0 + int(xs[0]), y0 + int(ys[0])
