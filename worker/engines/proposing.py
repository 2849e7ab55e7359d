"""What an engine's `propose` is given: the settings of automatic proposals,
and the helpers every candidate source shares (the click grid, SAM's
stability score). The pipeline that ranks and deduplicates candidates is
worker/proposals/; engines depend on this module, never on the pipeline.
Nothing here imports Django."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Protocol

import numpy as np

from worker.engines.base import EmbeddingSet, MaskResult, Tile


class Proposes(Protocol):
    """An engine that finds every object of an embedding by itself."""

    def propose(self, embedding: EmbeddingSet, settings: ProposalSettings) -> list[MaskResult]:
        """Candidate masks in the image frame, each filtered by the engine's own quality measure."""
        ...


@dataclass(frozen=True)
class ProposalSettings:
    """How proposals are found; the defaults follow SAM's automatic mask generator."""

    points_per_side: int = 32  # grid points along a tile's longer side (SAM: per 1024 px)
    points_per_batch: int = 16  # prompts per decoder call (~20 MB each on CPU)
    min_predicted_iou: float = 0.88  # SAM's own estimate of a mask's IoU
    min_stability: float = 0.95  # IoU of the mask thresholded at +-stability_offset logits
    stability_offset: float = 1.0
    box_nms_iou: float = 0.7
    dedupe_iou: float = 0.5
    dedupe_cover: float = 0.9
    min_area: int = 10  # pixels
    max_area_fraction: float = 0.5  # of the tile's area

    def __post_init__(self) -> None:
        if not 1 <= self.points_per_side <= 128:
            raise ValueError("points_per_side must be between 1 and 128")
        if not 1 <= self.points_per_batch <= 256:
            raise ValueError("points_per_batch must be between 1 and 256")
        for name in (
            "min_predicted_iou",
            "min_stability",
            "box_nms_iou",
            "dedupe_iou",
            "dedupe_cover",
            "max_area_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.stability_offset <= 0:
            raise ValueError("stability_offset must be positive")
        if self.min_area < 1:
            raise ValueError("min_area must be at least 1")

    @classmethod
    def from_options(cls, options: dict[str, object]) -> ProposalSettings:
        """Settings from a JSON object of overrides; ValueError names a bad key or value."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown proposal option(s): {', '.join(unknown)}")
        values: dict[str, object] = {}
        for name, value in options.items():
            default = getattr(cls, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if isinstance(default, int) and not float(value).is_integer():
                raise ValueError(f"{name} must be an integer")
            values[name] = int(value) if isinstance(default, int) else float(value)
        return cls(**values)  # type: ignore[arg-type]

    def as_options(self) -> dict[str, object]:
        return asdict(self)


def grid_points(tile: Tile, points_per_side: int) -> np.ndarray:
    """Nx2 (x, y) image pixels: a regular grid over `tile`, `points_per_side`
    along its longer side and as evenly spaced along the other, each point at
    the centre of its cell."""
    spacing = max(tile.width, tile.height) / points_per_side
    nx = max(1, round(tile.width / spacing))
    ny = max(1, round(tile.height / spacing))
    xs = tile.x0 + (np.arange(nx) + 0.5) * tile.width / nx
    ys = tile.y0 + (np.arange(ny) + 0.5) * tile.height / ny
    grid_x, grid_y = np.meshgrid(xs, ys)
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)


def stability_score(logits: np.ndarray, threshold: float = 0.0, offset: float = 1.0) -> float:
    """How little a mask changes with its cut-off: the IoU of the mask at
    `threshold + offset` with the mask at `threshold - offset` (the first lies
    inside the second, so it is a ratio of pixel counts). 0 for no pixels."""
    low = int(np.count_nonzero(logits > threshold - offset))
    if low == 0:
        return 0.0
    return int(np.count_nonzero(logits > threshold + offset)) / low
