"""The figures every training and evaluation job reports on validation
images: the simulated annotator's (worker/evaluation.py: NoC@85, NoC@90,
IoU after 1, 3 and 5 clicks, box IoU) and, for automatic proposals, F1 and
PQ at IoU 0.5 against the curated instances, and the F1 of their boxes:
an engine with a box detector is judged by the boxes it detects (its masks
also depend on the decoder), any other by its proposals' bounding boxes.

Curated labels may be partial, so a proposal that matches no curated
instance is a false positive only where the image is known: when most of
its pixels lie farther than the margin from every labelled object, it may
be an object nobody labelled, and it is not counted (unless the image is
said to be completely labelled).
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
from worker.training.detector import match_boxes
from worker.training.targets import MARGIN

MATCH_IOU = 0.5
MAX_OBJECTS = 300  # simulated objects per run, spread over the images


@dataclass(frozen=True)
class ValidationImage:
    embedding: EmbeddingSet
    truths: list[dict[str, Any]]  # the curated instances' RLEs
    complete: bool = False  # every object is among them: every proposal counts


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
    # max_objects 0: proposals only.
    per_image = max(max_objects // max(len(images), 1), 1) if max_objects else 0
    traces = []
    tp = fp = fn = 0
    boxes = np.zeros(3, dtype=int)
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
            found, box_counts = _proposal_counts(engine, image)
            tp, fp, fn, matched_iou = (
                tp + found[0],
                fp + found[1],
                fn + found[2],
                matched_iou + found[3],
            )
            boxes += box_counts
        if image_done is not None:
            image_done()
    figures = summarize(traces)
    figures["images"] = len(images)
    if proposals:
        f1 = _f1(tp, fp, fn)
        figures.update(
            proposal_f1=f1, proposal_pq=(matched_iou / tp if tp else 0.0) * f1,
            proposal_tp=tp, proposal_fp=fp, proposal_fn=fn,
            proposal_box_f1=_f1(*boxes),
        )  # fmt: skip
    return figures


def _f1(tp: int, fp: int, fn: int) -> float:
    return float(tp / (tp + 0.5 * fp + 0.5 * fn)) if tp + fp + fn else 1.0


def _proposal_counts(
    engine: Engine, image: ValidationImage
) -> tuple[tuple[int, int, int, float], np.ndarray]:
    """(TP, FP, FN, sum of matched IoUs) of the engine's proposals on one
    image, and (TP, FP, FN) of their boxes."""
    height, width = image.embedding.image_height, image.embedding.image_width
    labelled = np.zeros((height, width), dtype=bool)
    for truth in image.truths:
        labelled |= rle.decode(truth)
    if image.complete:
        known = np.ones_like(labelled)
    else:
        known = ndi.distance_transform_edt(~labelled) <= MARGIN
    scored = []
    for found in propose(engine, image.embedding):
        mask = full_frame(found, height, width)
        if mask.any() and known[mask].mean() >= 0.5:
            crop = found.mask_crop
            scored.append(Labelled(rle.encode_crop(crop, found.x0, found.y0, height, width), 0))
    score = pair_score([Labelled(t, 0) for t in image.truths], scored, MATCH_IOU)
    detected = _detected_boxes(engine, image.embedding)
    if detected is None:
        boxes = _xyxy([s.rle for s in scored])
    else:  # the same rule: a box mostly beyond the margin of every label is not counted
        boxes = np.array([box for box in detected if _known_share(known, box) >= 0.5])
    box_counts = match_boxes(boxes.reshape(-1, 4), _xyxy(image.truths), None, MATCH_IOU)
    return (score.tp, score.fp, score.fn, score.mean_iou * score.tp), np.array(box_counts)


def _detected_boxes(engine: Engine, embedding: EmbeddingSet) -> np.ndarray | None:
    """The boxes of the engine's detector (or of the engine a tiling wrapper
    holds as `inner`), None without one."""
    for candidate in (engine, getattr(engine, "inner", None)):
        detects = getattr(candidate, "detect_boxes", None)
        if callable(detects):
            found = detects(embedding)
            return None if found is None else np.asarray(found[0])
    return None


def _known_share(known: np.ndarray, box: np.ndarray) -> float:
    x0, y0 = int(box[0]), int(box[1])
    x1, y1 = max(int(np.ceil(box[2])), x0 + 1), max(int(np.ceil(box[3])), y0 + 1)
    region = known[y0:y1, x0:x1]
    return float(region.mean()) if region.size else 0.0


def _xyxy(rles: Sequence[dict[str, Any]]) -> np.ndarray:
    """(N, 4) boxes (x0, y0, x1, y1) of RLE masks, in pixels."""
    boxes = []
    for encoded in rles:
        rows, cols = np.nonzero(rle.decode(encoded))
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1] if rows.size
                     else [0, 0, 0, 0])  # fmt: skip
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


# The figures a new version must improve to be adopted, in order (the next
# decides a tie), and whether lower is better: a box detector changes only
# the proposals; every other kind is judged by the simulated annotator.
DECISIVE: dict[str, tuple[tuple[str, bool], ...]] = {
    "detector": (("proposal_f1", False), ("proposal_box_f1", False)),
    "default": (("noc85", True), ("miou_at_1", False)),
}


def better(after: dict[str, Any], before: dict[str, Any], kind: str = "default") -> bool:
    """Whether `after` beats `before` on validation: for a detector, better
    proposals (F1 of the masks, then of their boxes); else fewer clicks to
    IoU 0.85 (NoC@85), or as few and a higher IoU after one click."""
    for name, lower in DECISIVE.get(kind, DECISIVE["default"]):
        a, b = after.get(name), before.get(name)
        if a is None or b is None:
            return False
        if a != b:
            return bool(a < b) if lower else bool(a > b)
    return False
