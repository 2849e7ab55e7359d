"""One object carried from slice to slice through a volume (3D propagation).

From the object's mask on one plane, the next plane is prompted as an
annotator would: the box around the previous mask, and for SAM the previous
mask as the decoder's mask input (worker/engines/mask_input.py); an engine
without a mask input (the classical one) gets a positive click at the
previous mask's most interior point instead. The step stops, saying why,
where the object vanishes (too small, or much smaller than on the previous
plane), where it leaks (much larger), where it no longer overlaps the
previous plane's mask enough to be the same object, or where SAM's
predicted IoU falls below `min_score`. No Django: the backend's job
(backend/propagation/run.py) walks the planes and stores each mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from worker.engines.base import EmbeddingSet, Engine, Prompt
from worker.engines.mask_input import mask_to_previous


@dataclass(frozen=True)
class PropagationSettings:
    min_score: float = 0.5  # the model's predicted IoU below which it stops
    min_area: int = 8  # pixels: smaller is the object vanishing
    min_ratio: float = 0.15  # of the previous plane's area: under it, the object vanished
    max_ratio: float = 3.0  # times the previous plane's area: over it, the mask leaked
    min_overlap: float = 0.3  # IoU with the previous plane's mask: under it, another object


@dataclass(frozen=True)
class Step:
    mask: np.ndarray | None  # bool (H, W) on the new plane; None when it stopped
    score: float
    stop: str  # why it stopped, "" when it goes on


def propagate_step(
    engine: Engine,
    embedding: EmbeddingSet,
    previous: np.ndarray,
    settings: PropagationSettings = PropagationSettings(),
) -> Step:
    """The object on the plane of `embedding`, from its mask `previous` (bool
    (H, W)) on the neighbouring plane."""
    ys, xs = np.nonzero(previous)
    if not len(xs):
        return Step(None, 0.0, "the object is empty")
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    prior = mask_to_previous(embedding, previous)
    clicks: tuple[tuple[float, float, int], ...] = ()
    if prior.logits is None:  # no mask input: say which object inside the box
        inside = distance_transform_edt(np.pad(previous, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
        clicks = ((float(x) + 0.5, float(y) + 0.5, 1),)
    result = engine.decode(
        embedding,
        Prompt(points_xy_image=clicks, box_xyxy_image=box),
        prior if prior.logits is not None else None,
    )
    mask = np.zeros(previous.shape, dtype=bool)
    h, w = result.mask_crop.shape
    mask[result.y0 : result.y0 + h, result.x0 : result.x0 + w] = result.mask_crop
    area, before = int(mask.sum()), int(previous.sum())
    if area < settings.min_area or area < settings.min_ratio * before:
        return Step(None, result.score, f"the object vanished ({before} px, then {area} px)")
    if area > settings.max_ratio * before:
        return Step(None, result.score, f"the mask leaked ({before} px, then {area} px)")
    overlap = float((mask & previous).sum()) / max(1, int((mask | previous).sum()))
    if overlap < settings.min_overlap:
        return Step(
            None, result.score, f"the mask overlaps the last one too little (IoU {overlap:.2f})"
        )
    if result.score < settings.min_score:
        return Step(None, result.score, f"the model's confidence fell to {result.score:.2f}")
    return Step(mask, result.score, "")
