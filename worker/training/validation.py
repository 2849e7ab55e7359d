"""The figures every training and evaluation job reports on validation
images: the simulated annotator's (worker/evaluation.py: NoC@85, NoC@90,
IoU after 1, 3 and 5 clicks, box IoU) and, for automatic proposals, F1 and
PQ at IoU 0.5 against the curated instances.

Curated labels may be partial, so a proposal that matches no curated
instance is a false positive only where the image is known: when most of
its pixels lie farther than the margin from every labelled object, it may
be an object nobody labelled, and it is not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from worker import rle
from worker.engines.base import EmbeddingSet, Engine
from worker.evaluation import MAX_CLICKS, NOC_THRESHOLDS, simulate_object, summarize
from worker.proposals.pipeline import full_frame, propose
from worker.quality.agreement import Labelled, pair_score
from worker.training.targets import MARGIN

MATCH_IOU = 0.5
MAX_OBJECTS = 300  # simulated objects per run, spread over the images


@dataclass(frozen=True)
class ValidationImage:
    embedding: EmbeddingSet
    truths: list[dict[str, Any]]  # the curated instances' RLEs


def validation_figures(
    engine: Engine,
    images: Sequence[ValidationImage],
    *,
    proposals: bool = True,
    max_objects: int = MAX_OBJECTS,
    image_done: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """{noc85, noc90, miou_at_1, ..., box_iou, objects, images, proposal_f1,
    proposal_pq, proposals}: the engine on these images' curated instances."""
    per_image = max(max_objects // max(len(images), 1), 1)
    traces = []
    tp = fp = fn = 0
    matched_iou = 0.0
    for image in images:
        for truth in image.truths[:per_image]:
            traces.append(
                simulate_object(
                    engine,
                    image.embedding,
                    rle.decode(truth),
                    MAX_CLICKS,
                    stop_iou=max(NOC_THRESHOLDS),
                )
            )
        if proposals:
            found = _proposal_counts(engine, image)
            tp, fp, fn, matched_iou = (
                tp + found[0],
                fp + found[1],
                fn + found[2],
                matched_iou + found[3],
            )
        if image_done is not None:
            image_done()
    figures = summarize(traces)
    figures["images"] = len(images)
    if proposals:
        f1 = tp / (tp + 0.5 * fp + 0.5 * fn) if tp + fp + fn else 1.0
        figures.update(
            proposal_f1=f1, proposal_pq=(matched_iou / tp if tp else 0.0) * f1,
            proposal_tp=tp, proposal_fp=fp, proposal_fn=fn,
        )  # fmt: skip
    return figures


def _proposal_counts(engine: Engine, image: ValidationImage) -> tuple[int, int, int, float]:
    """(TP, FP, FN, sum of matched IoUs) of the engine's proposals on one image."""
    height, width = image.embedding.image_height, image.embedding.image_width
    labelled = np.zeros((height, width), dtype=bool)
    for truth in image.truths:
        labelled |= rle.decode(truth)
    known = ndi.distance_transform_edt(~labelled) <= MARGIN
    scored = []
    for found in propose(engine, image.embedding):
        mask = full_frame(found, height, width)
        if mask.any() and known[mask].mean() >= 0.5:
            crop = found.mask_crop
            scored.append(Labelled(rle.encode_crop(crop, found.x0, found.y0, height, width), 0))
    score = pair_score([Labelled(t, 0) for t in image.truths], scored, MATCH_IOU)
    return score.tp, score.fp, score.fn, score.mean_iou * score.tp


# The figure a new version must improve to be adopted, and which way is better.
DECISIVE = ("noc85", "lower")


def better(after: dict[str, Any], before: dict[str, Any]) -> bool:
    """Whether `after` beats `before` on validation: fewer clicks to IoU 0.85
    (NoC@85), or as few and a higher IoU after one click."""
    a, b = after.get("noc85"), before.get("noc85")
    if a is None or b is None:
        return False
    if a != b:
        return bool(a < b)
    return bool((after.get("miou_at_1") or 0.0) > (before.get("miou_at_1") or 0.0))
