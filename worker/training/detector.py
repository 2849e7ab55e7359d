"""Training the box detector (worker/engines/sam/detector.py) on the stored
embeddings of a project's curated images, CenterNet's way:

- heat: a Gaussian bump at each object's centre cell (its spread a sixth of
  the box's geometric mean side), learnt with CenterNet's penalty-reduced
  focal loss;
- size (log side / 16) and offset (the centre within its cell): L1 at the
  centre cells only.

Partial labels: a cell is known background only within KNOWN_CELLS cells
of a labelled object's box, or anywhere in an image said to be completely
labelled; the heat loss ignores every other cell, so the 50 unlabelled
cells of an image where 10 are labelled are not taught as background. The
same rule decides, on validation, which unmatched detections count as
false positives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi
from torch.nn import functional

from worker.engines.sam.detector import GRID, STRIDE, THRESHOLD, BoxHead, boxes_from_maps
from worker.engines.sam.loading import IMAGE_SIZE
from worker.training.cancelling import TrainingCancelledError
from worker.training.sam_decoder import LOW_RES, View

EPOCHS = 40
BATCH = 4  # views per step
MIN_STEPS = 8  # per epoch: a project of one or two images still learns
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
KNOWN_CELLS = 2  # cells of known background around each labelled box
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Targets:
    heat: np.ndarray  # (64, 64) float32, 1 at centres
    size: np.ndarray  # (2, 64, 64) log(side / STRIDE) at centres
    offset: np.ndarray  # (2, 64, 64) centre within its cell at centres
    centres: np.ndarray  # (64, 64) bool
    known: np.ndarray  # (64, 64) bool: where the heat loss counts


def view_boxes(view: View) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 of the view's objects in the 1024 frame."""
    scale = IMAGE_SIZE / LOW_RES
    boxes = []
    for mask in view.masks:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * scale


def known_cells(boxes: np.ndarray, complete: bool) -> np.ndarray:
    """(64, 64) bool: cells whose centre lies within KNOWN_CELLS of a box."""
    if complete:
        return np.ones((GRID, GRID), dtype=bool)
    inside = np.zeros((GRID, GRID), dtype=bool)
    for x0, y0, x1, y1 in boxes / STRIDE:
        inside[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
    square = np.ones((3, 3), dtype=bool)
    return ndi.binary_dilation(inside, square, KNOWN_CELLS) if inside.any() else inside


def view_targets(view: View) -> Targets:
    boxes = view_boxes(view)
    heat = np.zeros((GRID, GRID), dtype=np.float32)
    size = np.zeros((2, GRID, GRID), dtype=np.float32)
    offset = np.zeros((2, GRID, GRID), dtype=np.float32)
    centres = np.zeros((GRID, GRID), dtype=bool)
    ys, xs = np.mgrid[0:GRID, 0:GRID].astype(np.float32)
    # Largest first, so a small object sharing a centre cell keeps it.
    for x0, y0, x1, y1 in sorted(boxes.tolist(), key=lambda b: -(b[2] - b[0]) * (b[3] - b[1])):
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        col, row = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
        sigma = max(np.sqrt((x1 - x0) * (y1 - y0)) / STRIDE / 6, 0.5)
        bump = np.exp(-((xs - col) ** 2 + (ys - row) ** 2) / (2 * sigma**2))
        heat = np.maximum(heat, bump)
        heat[row, col] = 1.0
        centres[row, col] = True
        size[:, row, col] = np.log(max(x1 - x0, 1.0) / STRIDE), np.log(max(y1 - y0, 1.0) / STRIDE)
        offset[:, row, col] = cx - col, cy - row
    return Targets(heat, size, offset, centres, known_cells(boxes, view.complete) | centres)


def _batch(targets: Sequence[Targets]) -> dict[str, torch.Tensor]:
    return {
        name: torch.from_numpy(np.stack([getattr(t, name) for t in targets]))
        for name in ("heat", "size", "offset", "centres", "known")
    }


def detector_loss(
    head: BoxHead, features: torch.Tensor, target: dict[str, torch.Tensor]
) -> torch.Tensor:
    heat, size, offset = head(features)
    prob = torch.sigmoid(heat).clamp(1e-4, 1 - 1e-4)
    centres, known = target["centres"], target["known"]
    positive = -((1 - prob) ** 2) * torch.log(prob)
    negative = -((1 - target["heat"]) ** 4) * prob**2 * torch.log(1 - prob)
    count = centres.sum().clamp(min=1)
    heat_loss = (positive[centres].sum() + negative[known & ~centres].sum()) / count
    at = centres[:, None].expand_as(size)
    size_loss = functional.l1_loss(size[at], target["size"][at], reduction="sum") / count
    offset_loss = functional.l1_loss(offset[at], target["offset"][at], reduction="sum") / count
    return heat_loss + 0.5 * size_loss + offset_loss


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_boxes(
    found: np.ndarray, truths: np.ndarray, known: np.ndarray | None, iou: float = MATCH_IOU
) -> tuple[int, int, int]:
    """(TP, FP, FN): `found` (best first) matched greedily to `truths` at
    IoU >= `iou`; an unmatched box is a false positive only when its centre
    lies on a known cell of `known` (64 x 64 in the 1024 frame; None: always)."""
    ious = box_iou(found, truths) if len(found) and len(truths) else np.zeros((len(found), 0))
    taken = np.zeros(len(truths), dtype=bool)
    tp = fp = 0
    for row in range(len(found)):
        candidates = np.where(taken, -1.0, ious[row]) if len(truths) else np.zeros(0)
        if candidates.size and candidates.max() >= iou:
            taken[int(candidates.argmax())] = True
            tp += 1
            continue
        if known is None:
            fp += 1
            continue
        cx, cy = (found[row, 0] + found[row, 2]) / 2, (found[row, 1] + found[row, 3]) / 2
        col, line = min(int(cx / STRIDE), GRID - 1), min(int(cy / STRIDE), GRID - 1)
        fp += int(known[line, col])
    return tp, fp, int((~taken).sum())


def detector_train(
    head: BoxHead,
    train: Sequence[View],
    val: Sequence[View],
    *,
    epochs: int = EPOCHS,
    seed: int = 0,
    stage_done: Callable[[dict[str, Any]], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Train in place; the curve, one point per epoch: the training loss, the
    validation loss and the validation F1 of the boxes at IoU 0.5."""
    train = [v for v in train if v.masks.shape[0]]
    if not train:
        raise ValueError("the training images have no objects")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=LEARNING_RATE,
                                  weight_decay=WEIGHT_DECAY)  # fmt: skip
    targets = [view_targets(v) for v in train]
    curve: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        if cancelled is not None and cancelled():
            raise TrainingCancelledError
        head.train()
        losses = []
        # Each view once per epoch in a random order, repeated (reshuffled)
        # until the epoch has MIN_STEPS steps.
        repeats = max(1, -(-MIN_STEPS * BATCH // len(train)))
        order = np.concatenate([rng.permutation(len(train)) for _ in range(repeats)])
        for start in range(0, max(len(order), 1), BATCH):
            chosen = order[start : start + BATCH]
            features = torch.from_numpy(np.stack([train[i].features for i in chosen]))
            loss = detector_loss(head, features, _batch([targets[i] for i in chosen]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        head.eval()
        point = {"epoch": epoch, "epochs": epochs, "loss": float(np.mean(losses)),
                 **detector_validation(head, val)}  # fmt: skip
        curve.append(point)
        if stage_done is not None:
            stage_done(point)
    return curve


def detector_validation(head: BoxHead, val: Sequence[View]) -> dict[str, Any]:
    """{"val_loss", "val_f1"} on validation views (None without objects)."""
    views = [v for v in val if v.masks.shape[0]]
    if not views:
        return {"val_loss": None, "val_f1": None}
    tp = fp = fn = 0
    losses = []
    with torch.inference_mode():
        for view in views:
            target = view_targets(view)
            features = torch.from_numpy(view.features)[None]
            losses.append(float(detector_loss(head, features, _batch([target]))))
            heat, size, offset = head(features)
            found = boxes_from_maps(heat[0], size[0], offset[0], view.input_size, THRESHOLD, 10**4)
            counts = match_boxes(found.boxes, view_boxes(view), target.known)
            tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
    f1 = tp / (tp + 0.5 * (fp + fn)) if tp + fp + fn else 1.0
    return {"val_loss": float(np.mean(losses)), "val_f1": f1}
