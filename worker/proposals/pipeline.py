"""Automatic instance proposals: every object an engine finds in an image.

`propose` turns an image's embedding into non-overlapping-ish candidate masks
in the image frame, in three steps:

1. Candidates, per tile: the engine's own `propose(embedding, settings)` when
   it has one (the classical engine; SAM's batched grid decode,
   worker/engines/sam/grid.py), or else a grid of single-point `decode`
   calls. Each source filters by its own quality measure (SAM: predicted IoU
   and stability score).
2. Area limits: fewer than `min_area` pixels, or more than
   `max_area_fraction` of the tile, is not an instance.
3. Deduplication across grid points and tile overlaps: candidates are ranked
   (masks cut by a tile's inner side last, then those of a tiled
   embedding's shrunk overview tile, then by score: as SAM's generator
   prefers its finer crops), box NMS drops boxes overlapping a better one by
   IoU > `box_nms_iou`, and a mask dedupe drops masks whose IoU with a kept
   mask exceeds `dedupe_iou` or that a kept mask covers by more than
   `dedupe_cover` (a tile-cut piece of an object that another tile sees whole).

`exclude_curated` then keeps proposals off curated (accepted) instances.

Frames: every MaskResult here is a crop placed at (x0, y0) in image pixels;
`tile_index` names the tile that produced it. Nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from worker.engines.base import EmbeddingSet, Engine, MaskResult, Prompt, Tile, tight_crop
from worker.engines.proposing import ProposalSettings, grid_points
from worker.engines.tiling import native_tiles, overview_index

Proposer = Callable[[EmbeddingSet, ProposalSettings], list[MaskResult]]


def propose(
    engine: Engine, embedding: EmbeddingSet, settings: ProposalSettings | None = None
) -> list[MaskResult]:
    """Proposed instance masks of the whole image, best first, deduplicated."""
    settings = settings or ProposalSettings()
    candidates = candidate_source(engine)(embedding, settings)
    return deduplicate(area_filter(candidates, embedding, settings), embedding, settings)


def candidate_source(engine: Engine) -> Proposer:
    """Where candidates come from: the engine's own `propose` (SAM's click
    grid, worker/engines/sam/grid.py; the classical engine's watershed), or
    that of the engine a wrapper such as the tiling one holds as `inner`, or
    else single clicks through `engine.decode`."""
    for candidate in (engine, getattr(engine, "inner", None)):
        own = getattr(candidate, "propose", None)
        if callable(own):
            return own
    return lambda embedding, settings: decode_grid_candidates(engine, embedding, settings)


# -- the generic source: one decode per grid point ---------------------------


def decode_grid_candidates(
    engine: Engine, embedding: EmbeddingSet, settings: ProposalSettings
) -> list[MaskResult]:
    """One positive click per grid point of each native tile, through
    `engine.decode` (a tiling engine picks the tile for each click, and the
    overview for an object no tile holds). Keeps masks scoring at least
    `min_predicted_iou`; an engine's score is its own quality measure."""
    out: list[MaskResult] = []
    for index in native_tiles(embedding):
        for x, y in grid_points(embedding.tiles[index], settings.points_per_side):
            prompt = Prompt(points_xy_image=((float(x), float(y), 1),))
            result = engine.decode(embedding, prompt, None)
            if result.mask_crop.size and result.score >= settings.min_predicted_iou:
                out.append(result)
    return out


# -- quality and geometry ----------------------------------------------------


def mask_box(mask: MaskResult) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in image pixels, exclusive on the right and bottom."""
    h, w = mask.mask_crop.shape
    return mask.x0, mask.y0, mask.x0 + w, mask.y0 + h


def mask_area(mask: MaskResult) -> int:
    return int(np.count_nonzero(mask.mask_crop))


def overlap(a: MaskResult, b: MaskResult) -> int:
    """Pixels in both masks."""
    ax0, ay0, ax1, ay1 = mask_box(a)
    bx0, by0, bx1, by1 = mask_box(b)
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x0 >= x1 or y0 >= y1:
        return 0
    part_a = a.mask_crop[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]
    part_b = b.mask_crop[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    return int(np.count_nonzero(part_a & part_b))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each row of an Nx4 array."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def box_nms(boxes: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy NMS: indices of the Nx4 boxes kept, given best first; a box is
    dropped when its IoU with a kept one exceeds `iou_threshold`."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed[i + 1 :] |= box_iou(boxes[i], boxes[i + 1 :]) > iou_threshold
    return keep


def touches_inner_side(mask: MaskResult, tile: Tile, image_height: int, image_width: int) -> bool:
    """Whether the mask reaches a side of its tile that is not a side of the
    image: the object may go on beyond the tile, cut."""
    x0, y0, x1, y1 = mask_box(mask)
    return (
        (x0 <= tile.x0 and tile.x0 > 0)
        or (y0 <= tile.y0 and tile.y0 > 0)
        or (x1 >= tile.x0 + tile.width and tile.x0 + tile.width < image_width)
        or (y1 >= tile.y0 + tile.height and tile.y0 + tile.height < image_height)
    )


# -- the pipeline's common steps ---------------------------------------------


def area_filter(
    candidates: Sequence[MaskResult], embedding: EmbeddingSet, settings: ProposalSettings
) -> list[MaskResult]:
    out = []
    for mask in candidates:
        tile = embedding.tiles[mask.tile_index]
        area = mask_area(mask)
        if settings.min_area <= area <= settings.max_area_fraction * tile.width * tile.height:
            out.append(mask)
    return out


def deduplicate(
    candidates: Sequence[MaskResult], embedding: EmbeddingSet, settings: ProposalSettings
) -> list[MaskResult]:
    """Candidates ranked (whole before tile-cut, native tiles before the
    overview, then by score), box NMS, then mask dedupe by IoU and cover."""
    height, width = embedding.image_height, embedding.image_width
    overview = overview_index(embedding)

    def rank(mask: MaskResult) -> tuple[bool, bool, float]:
        cut = touches_inner_side(mask, embedding.tiles[mask.tile_index], height, width)
        return cut, mask.tile_index == overview, -mask.score

    ranked = sorted(candidates, key=rank)
    boxes = np.array([mask_box(m) for m in ranked], dtype=np.float64).reshape(-1, 4)
    after_nms = [ranked[i] for i in box_nms(boxes, settings.box_nms_iou)]
    return mask_dedupe(after_nms, iou_threshold=settings.dedupe_iou, cover=settings.dedupe_cover)


def mask_dedupe(
    ranked: Sequence[MaskResult], *, iou_threshold: float, cover: float
) -> list[MaskResult]:
    """Masks, best first, minus those whose IoU with a kept mask exceeds
    `iou_threshold` or of which a kept mask covers more than `cover`."""
    kept: list[MaskResult] = []
    kept_areas: list[int] = []
    for mask in ranked:
        area = mask_area(mask)
        duplicate = False
        for other, other_area in zip(kept, kept_areas, strict=True):
            inter = overlap(mask, other)
            if inter == 0:
                continue
            if inter / (area + other_area - inter) > iou_threshold or inter / area > cover:
                duplicate = True
                break
        if not duplicate:
            kept.append(mask)
            kept_areas.append(area)
    return kept


def exclude_curated(
    proposals: Sequence[MaskResult],
    curated: np.ndarray,
    *,
    max_covered: float = 0.5,
    min_area: int = 1,
) -> list[MaskResult]:
    """Proposals that stay off the curated masks (`curated`: bool, H x W, the
    union of accepted instances): a proposal more than `max_covered` covered
    is dropped (so none duplicates an accepted instance: its IoU with any one
    of them is then at most `max_covered` too); from the others the curated
    pixels are cut out, and what keeps fewer than `min_area` pixels goes."""
    out = []
    for mask in proposals:
        x0, y0, x1, y1 = mask_box(mask)
        taken = curated[y0:y1, x0:x1] & mask.mask_crop
        area = mask_area(mask)
        covered = int(np.count_nonzero(taken))
        if area == 0 or covered / area > max_covered:
            continue
        if covered:
            crop, cx, cy = tight_crop(mask.mask_crop & ~taken, x0, y0)
            if int(np.count_nonzero(crop)) < min_area:
                continue
            mask = MaskResult(crop, cx, cy, mask.score, None, mask.tile_index)
        out.append(mask)
    return out


def full_frame(mask: MaskResult, height: int, width: int) -> np.ndarray:
    """The bool (height, width) mask of a crop."""
    frame = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = mask_box(mask)
    frame[y0:y1, x0:x1] = mask.mask_crop
    return frame
