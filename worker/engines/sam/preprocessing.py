"""How each SAM-family model wants its image and its prompts; the model
registry records which one a model uses (SegmentationModel.preprocessing).

- `sam` (SAM, and fine-tunes trained its way): the image resized so its
  longest side is 1024 (ResizeLongestSide, antialiased bilinear), normalised
  by SAM's pixel mean and standard deviation, zero-padded to 1024 x 1024;
  prompts scaled by the same factor on both axes; masks as SamPredictor
  makes them (logits upsampled to 1024, the padding dropped, upsampled to
  the image).
- `medsam` (MedSAM, after its reference inference, MedSAM_Inference.py):
  the image resized to 1024 x 1024 whatever its aspect (scikit-image,
  bicubic, anti-aliased, cut to uint8), scaled to [0, 1] by its own minimum
  and maximum, with no mean or standard deviation; prompts scaled per axis
  (x by 1024 / width, y by 1024 / height); masks' logits upsampled
  bilinearly straight to the image size.

A checkpoint installed with `--arch medsam` is a vit_b with `medsam`
preprocessing; `--preprocessing medsam` gives it to any arch.
"""

from __future__ import annotations

import numpy as np
from segment_anything.utils.transforms import ResizeLongestSide
from skimage.transform import resize

SAM, MEDSAM = "sam", "medsam"
PREPROCESSINGS = (SAM, MEDSAM)
MODEL_SIZE = 1024
# Families installed by name: --arch medsam is vit_b's layout with MedSAM's preprocessing.
FAMILIES = {MEDSAM: ("vit_b", MEDSAM)}


def is_square(preprocessing: str) -> bool:
    """Whether the image fills the whole 1024 x 1024 input (no padding)."""
    return preprocessing == MEDSAM


def input_size(preprocessing: str, height: int, width: int) -> tuple[int, int]:
    """(h, w) of the image inside the 1024 x 1024 model input."""
    if is_square(preprocessing):
        return MODEL_SIZE, MODEL_SIZE
    return ResizeLongestSide.get_preprocess_shape(height, width, MODEL_SIZE)


def model_coords(
    points_xy: np.ndarray, original_size: tuple[int, int], resized: tuple[int, int]
) -> np.ndarray:
    """Image (x, y) points in the model's 1024 frame: x scaled by resized
    width / width, y by resized height / height (ResizeLongestSide's rule,
    which is MedSAM's box_1024 when the image is resized to a square)."""
    scale = np.array([resized[1] / original_size[1], resized[0] / original_size[0]])
    return np.asarray(points_xy, dtype=np.float64) * scale


def medsam_input(image_rgb: np.ndarray) -> np.ndarray:
    """MedSAM's (3, 1024, 1024) float32 encoder input of an (H, W, 3) uint8 image."""
    resized = resize(
        image_rgb, (MODEL_SIZE, MODEL_SIZE), order=3, preserve_range=True, anti_aliasing=True
    ).astype(np.uint8)
    low, high = float(resized.min()), float(resized.max())
    scaled = (resized - low) / max(high - low, 1e-8)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1), dtype=np.float32)
