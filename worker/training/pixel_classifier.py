"""Training the pixel classifier (worker/engines/classical/pixel_classifier.py)
on a project's curated labels.

Pixels are sampled from what is known (targets.py), balanced across the
three classes, and a random forest grows in stages (more trees each stage,
warm-started). After each stage the curve records the log loss on the
training sample and on the validation images' known pixels, and the IoU of
the object pixels (interior or boundary) it predicts there: a learning curve
a person can read, and the place where a cancelled job stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import log_loss

from worker.engines.classical.pixel_classifier import (
    BACKGROUND,
    CLASSES,
    PixelClassifier,
    features_at,
)
from worker.training.cancelling import TrainingCancelledError

STAGES = (4, 8, 16, 32)  # trees after each stage
PER_CLASS = 20_000  # sampled training pixels per class, over all images
VAL_PER_CLASS = 5_000
MAX_DEPTH = 16
MIN_LEAF = 4


@dataclass(frozen=True)
class LabelledImage:
    rgb: np.ndarray  # (H, W, 3) uint8, what the model sees
    targets: np.ndarray  # (H, W) int8 from targets.pixel_targets


@dataclass(frozen=True)
class Sample:
    features: np.ndarray  # (N, F)
    classes: np.ndarray  # (N,)


def pixel_sample(images: Sequence[LabelledImage], per_class: int, seed: int) -> Sample:
    """Up to `per_class` known pixels of each class, spread evenly over the images."""
    rng = np.random.default_rng(seed)
    share = max(per_class // max(len(images), 1), 1)
    features, classes = [], []
    for image in images:
        rows_all, cols_all, picked = [], [], []
        for value in CLASSES:
            rows, cols = np.nonzero(image.targets == value)
            if rows.size > share:
                keep = rng.choice(rows.size, size=share, replace=False)
                rows, cols = rows[keep], cols[keep]
            rows_all.append(rows)
            cols_all.append(cols)
            picked.append(np.full(rows.size, value, dtype=np.int8))
        rows, cols = np.concatenate(rows_all), np.concatenate(cols_all)
        if rows.size:
            features.append(features_at(image.rgb, rows, cols))
            classes.append(np.concatenate(picked))
    if not features:
        return Sample(np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int8))
    return Sample(np.concatenate(features), np.concatenate(classes))


def pixel_classifier_train(
    train: Sequence[LabelledImage],
    val: Sequence[LabelledImage],
    *,
    seed: int = 0,
    stages: Sequence[int] = STAGES,
    stage_done: Callable[[dict[str, Any]], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[PixelClassifier, list[dict[str, Any]]]:
    """A fitted classifier and its curve (one point per stage). Raises
    ValueError when the training images lack a class, TrainingCancelledError when
    `cancelled()` turns true."""
    sample = pixel_sample(train, PER_CLASS, seed)
    missing = [c for c in CLASSES if not (sample.classes == c).any()]
    if missing:
        names = {BACKGROUND: "background", 1: "object interior", 2: "object boundary"}
        raise ValueError(f"the training images show no {', '.join(names[c] for c in missing)}")
    held = pixel_sample(val, VAL_PER_CLASS, seed + 1)
    forest = RandomForestClassifier(
        n_estimators=stages[0], warm_start=True, max_depth=MAX_DEPTH,
        min_samples_leaf=MIN_LEAF, random_state=seed,
    )  # fmt: skip
    curve: list[dict[str, Any]] = []
    for epoch, trees in enumerate(stages, start=1):
        if cancelled is not None and cancelled():
            raise TrainingCancelledError
        forest.set_params(n_estimators=trees)
        forest.fit(sample.features, sample.classes)
        point = {"epoch": epoch, "epochs": len(stages), "trees": trees,
                 "loss": _loss(forest, sample), **_validation(forest, held)}  # fmt: skip
        curve.append(point)
        if stage_done is not None:
            stage_done(point)
    return PixelClassifier(forest), curve


def _loss(forest: RandomForestClassifier, sample: Sample) -> float:
    return float(log_loss(sample.classes, forest.predict_proba(sample.features), labels=CLASSES))


def _validation(forest: RandomForestClassifier, held: Sample) -> dict[str, Any]:
    if held.classes.size == 0:
        return {"val_loss": None, "val_iou": None}
    predicted = forest.predict(held.features) != BACKGROUND
    truth = held.classes != BACKGROUND
    union = int((predicted | truth).sum())
    return {
        "val_loss": _loss(forest, held),
        "val_iou": float((predicted & truth).sum() / union) if union else 1.0,
    }
