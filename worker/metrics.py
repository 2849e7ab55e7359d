"""How well two masks agree: the one `iou` that the simulated annotator, the
tests and the benchmarks share. No Django."""

from __future__ import annotations

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks of one shape; 1.0 if both are empty."""
    union = int(np.count_nonzero(np.logical_or(a, b)))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(np.logical_and(a, b))) / union
