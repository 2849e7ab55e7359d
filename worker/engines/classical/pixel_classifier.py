"""A pixel classifier for the classical engine: the method ilastik made
standard. Each pixel is described by multiscale intensity, edge and texture
features (scikit-image's `multiscale_basic_features`: Gaussian smoothing,
gradient magnitude and Hessian eigenvalues at sigmas from 0.5 to 16) and a
random forest (scikit-learn) tells background, object interior and object
boundary apart.

The engine does not change: its embedding, a map in [0, 1] that the
threshold and watershed read, becomes the forest's object map
`P(interior) + BOUNDARY_WEIGHT * P(boundary)` instead of the smoothed
intensity. Objects are then bright whatever they looked like, and touching
objects are parted by the dip their shared boundary makes.

Saved with skops (no pickle): loading builds only scikit-learn's and
NumPy's own types, and refuses anything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from skimage.feature import multiscale_basic_features
from skops.io import dump, get_untrusted_types, load

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
CLASSES = (BACKGROUND, INTERIOR, BOUNDARY)
BOUNDARY_WEIGHT = 0.5
SIGMA_MIN, SIGMA_MAX = 0.5, 16.0
# Features are computed a band of rows at a time, with a halo of rows above
# and below that the widest filter reaches: memory stays flat on big images
# and a band's pixels get the features the whole image would give them.
BAND_ROWS = 256
HALO_ROWS = int(4 * SIGMA_MAX)

# The one type a forest holds beyond those skops trusts by default
# (scikit-learn's estimators, NumPy's arrays); any other is refused.
TRUSTED = ["sklearn.tree._tree.Tree"]


def gray_of(image_rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1] of an (H, W, 3) or (H, W) uint8 image."""
    image = np.asarray(image_rgb, dtype=np.float32) / 255.0
    return image.mean(axis=2) if image.ndim == 3 else image


def pixel_features(gray: np.ndarray) -> np.ndarray:
    """(H, W, F) float32 features of every pixel of a (H, W) image (F is fixed)."""
    return multiscale_basic_features(
        gray, intensity=True, edges=True, texture=True, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX
    ).astype(np.float32)


def feature_bands(image_rgb: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, (rows, W, F) features) of each band of rows, top to bottom."""
    gray = gray_of(image_rgb)
    height = gray.shape[0]
    for top in range(0, height, BAND_ROWS):
        start, stop = max(top - HALO_ROWS, 0), min(top + BAND_ROWS + HALO_ROWS, height)
        features = pixel_features(gray[start:stop])
        yield top, features[top - start : top - start + min(BAND_ROWS, height - top)]


def features_at(image_rgb: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, F) features of the pixels at (rows[i], cols[i]), in that order."""
    found: np.ndarray | None = None
    for top, band in feature_bands(image_rgb):
        inside = (rows >= top) & (rows < top + band.shape[0])
        if found is None:
            found = np.zeros((rows.size, band.shape[2]), dtype=np.float32)
        found[inside] = band[rows[inside] - top, cols[inside]]
    assert found is not None
    return found


class PixelClassifier:
    """A fitted forest and what it makes of an image."""

    def __init__(self, forest: Any) -> None:
        if list(forest.classes_) != list(CLASSES):
            raise ValueError(f"a pixel classifier knows classes {CLASSES}, not {forest.classes_}")
        self.forest = forest

    def probabilities(self, image_rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32: P(background), P(interior), P(boundary)."""
        height, width = np.asarray(image_rgb).shape[:2]
        out = np.empty((height, width, len(CLASSES)), dtype=np.float32)
        for top, band in feature_bands(image_rgb):
            rows = band.reshape(-1, band.shape[2])
            out[top : top + band.shape[0]] = self.forest.predict_proba(rows).reshape(
                band.shape[0], width, len(CLASSES)
            )
        return out

    def object_map(self, image_rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1]: how much each pixel belongs to an object."""
        p = self.probabilities(image_rgb)
        return np.clip(p[..., INTERIOR] + BOUNDARY_WEIGHT * p[..., BOUNDARY], 0.0, 1.0)

    def save(self, path: Path) -> None:
        dump(self.forest, path)

    @classmethod
    def load(cls, path: Path | str) -> PixelClassifier:
        """Load a saved classifier; a file holding other types is refused unread."""
        untrusted = [t for t in get_untrusted_types(file=path) if t not in TRUSTED]
        if untrusted:
            raise ValueError(f"{path}: not a pixel classifier (it holds {', '.join(untrusted)})")
        return cls(load(path, trusted=TRUSTED))
