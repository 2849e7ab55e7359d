"""Which pixels of a partly labelled image a pixel classifier may learn from.

Curated labels are usually partial: 10 of 60 cells labelled says nothing
about the other 50, so "not labelled" must not mean "background". Known:

- interior and boundary: every labelled pixel (the boundary is the
  labelled pixels whose 4-neighbourhood leaves their instance, so touching
  instances are parted by a boundary two pixels wide);
- background: only the unlabelled pixels within `margin` pixels of a
  labelled one (annotators outline an object up to where it ends), or every
  unlabelled pixel of an image said to be completely labelled.

Everything else is unknown (-1) and never sampled.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from worker.engines.classical.pixel_classifier import BACKGROUND, BOUNDARY, INTERIOR

UNKNOWN = -1
MARGIN = 6  # pixels of known background around each labelled object


def pixel_targets(
    labels: np.ndarray, *, complete: bool = False, margin: int = MARGIN
) -> np.ndarray:
    """(H, W) int8 of UNKNOWN, BACKGROUND, INTERIOR or BOUNDARY from a label
    image (0 unlabelled, each other value one instance)."""
    labelled = labels > 0
    targets = np.full(labels.shape, UNKNOWN, dtype=np.int8)
    if complete:
        targets[~labelled] = BACKGROUND
    elif labelled.any():
        near = ndi.distance_transform_edt(~labelled) <= margin
        targets[near & ~labelled] = BACKGROUND
    edge = find_boundaries(labels, connectivity=1, mode="inner") & labelled
    targets[labelled & ~edge] = INTERIOR
    targets[edge] = BOUNDARY
    return targets
