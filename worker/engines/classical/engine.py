"""ClassicalEngine: seeded segmentation without a model, for when no SAM
checkpoint is installed (and for tests).

`embed` stores a smoothed grayscale image normalised to [0, 1] (float16, full
resolution, one tile). `decode` segments a region of interest (ROI) around
the prompt:

1. Foreground: pixels past half-way from the background level (a low
   percentile around the ROI) to the object's level (at the positive clicks,
   or the middle of the box). Relative to the clicked object, so a dim
   nucleus beside a bright one stays whole; dark objects work the same way
   (on a pixel classifier's object map objects are always the bright side).
2. The connected foreground under the clicks is split by a compact marker
   watershed on the gradient: positive clicks seed the object; negative
   clicks, distance-transform maxima of other objects and the ROI's sides
   (standing for what lies beyond) seed competitors.
3. Clicks only: the ROI starts at 2 x START_HALF_SIZE around the clicks and
   doubles while the object meets its sides (or the ROI is mostly
   foreground), up to MAX_HALF_SIZE.

A box limits the object to the box (plus BOX_MARGIN). The prompt holds all
clicks, so refinement needs no previous state. `score` is 1 for a mask, 0
for none; an empty mask is a (0, 0) crop at (0, 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian, sobel
from skimage.segmentation import watershed

from worker.engines.base import EmbeddingSet, MaskResult, Prompt, Tile, tight_crop
from worker.engines.classical.pixel_classifier import PixelClassifier
from worker.engines.classical.proposals import classical_propose
from worker.engines.proposing import ProposalSettings
from worker.engines.spec import CLASSICAL_SPEC, EngineSpec

START_HALF_SIZE = 24
MAX_HALF_SIZE = 256
BOX_MARGIN = 2
SMOOTHING_SIGMA = 1.0
BACKGROUND_PERCENTILE = 10  # of the ROI's surroundings
HALF_WAY = 0.5  # the object edge lies half-way between background and object levels
SEED_RADIUS = 0.5  # of the distance to the edge at a click
APART = 0.7  # a peak seeds another object if farther than this x (both radii)
COMPACTNESS = 0.01
MAX_FOREGROUND = 0.5  # an ROI more than half foreground grows
# A box's score: the object's contrast with a ring around it, 1 from this
# share of the image's range on (the embedding is scaled to [0, 1]); a blob
# cut out of noise scores low, and propagation stops there.
FULL_CONTRAST = 0.1

# Watershed seed labels.
_OBJECT, _NEGATIVE, _OTHER, _EDGE = 1, 2, 3, 4


@dataclass(frozen=True)
class _Roi:
    x0: int
    y0: int
    x1: int
    y1: int

    def clip(self, height: int, width: int) -> _Roi:
        return _Roi(max(self.x0, 0), max(self.y0, 0), min(self.x1, width), min(self.y1, height))


class ClassicalEngine:
    """The built-in engine ("classical-1"): threshold + seeded watershed; with
    a project's pixel classifier, on the classifier's object map."""

    def __init__(self, spec: EngineSpec = CLASSICAL_SPEC) -> None:
        self.key = spec.key
        self.embedding_key = spec.embedding_key
        self.classifier = (
            PixelClassifier.load(spec.checkpoint_path) if spec.checkpoint_path else None
        )
        # On a classifier's object map the object is the bright side (see
        # _background_level).
        self.on_map = self.classifier is not None
        self.description = (
            "Classical (threshold and watershed, no model)"
            if self.classifier is None
            else f"Classical on a pixel classifier ({spec.name})"
        )

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        """A smoothed grayscale float16 copy of an (H, W, 3) or (H, W) image;
        with a pixel classifier, its object map."""
        if self.classifier is not None:
            return self._embedding(self.classifier.object_map(image_rgb), {"classifier": True})
        image = np.asarray(image_rgb)
        gray = (
            image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
        )
        if gray.ndim != 2:
            raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {image.shape}")
        low, high = np.percentile(gray, (0.5, 99.8))
        scaled = np.clip((gray - low) / max(high - low, 1e-6), 0.0, 1.0)
        smooth = gaussian(scaled, sigma=SMOOTHING_SIGMA, preserve_range=True)
        return self._embedding(smooth, {"sigma": SMOOTHING_SIGMA})

    def _embedding(self, array: np.ndarray, meta: dict[str, object]) -> EmbeddingSet:
        height, width = array.shape
        return EmbeddingSet(
            engine_key=self.embedding_key,
            image_height=height,
            image_width=width,
            tiles=[Tile(x0=0, y0=0, width=width, height=height)],
            arrays=[array.astype(np.float16)],
            meta=meta,
        )

    def embed_batch(self, images_rgb: Sequence[np.ndarray]) -> list[EmbeddingSet]:
        """`embed` of each image: nothing here gains from batching."""
        return [self.embed(image) for image in images_rgb]

    def propose(self, embedding: EmbeddingSet, settings: ProposalSettings) -> list[MaskResult]:
        """Every object of every tile (see worker/engines/classical/proposals.py)."""
        return classical_propose(embedding, settings)

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        """The object under the prompt's positive clicks or inside its box."""
        if embedding.engine_key != self.embedding_key:
            raise ValueError(f"embedding of {embedding.engine_key} given to {self.key}")
        image = embedding.arrays[0]
        height, width = image.shape
        positives, negatives = _latest_clicks(prompt)
        if prompt.box_xyxy_image is not None:
            bx0, by0, bx1, by1 = prompt.box_xyxy_image
            roi = _Roi(
                int(np.floor(bx0)) - BOX_MARGIN,
                int(np.floor(by0)) - BOX_MARGIN,
                int(np.ceil(bx1)) + BOX_MARGIN,
                int(np.ceil(by1)) + BOX_MARGIN,
            ).clip(height, width)
            mask, contrast = _segment_box(image, roi, positives, negatives, self.on_map)
            result = _result(mask, roi)
            result.score = min(result.score, contrast)
            return result
        if not positives:
            return MaskResult(np.zeros((0, 0), dtype=bool), 0, 0, score=0.0)
        xs = [p[0] for p in positives]
        ys = [p[1] for p in positives]
        half = START_HALF_SIZE
        while True:
            roi = _Roi(
                int(min(xs)) - half,
                int(min(ys)) - half,
                int(max(xs)) + half + 1,
                int(max(ys)) + half + 1,
            ).clip(height, width)
            mask, too_small = _segment_points(image, roi, positives, negatives, self.on_map)
            if not too_small or half >= MAX_HALF_SIZE:
                return _result(mask, roi)
            half *= 2


def _latest_clicks(
    prompt: Prompt,
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Positive and negative clicks; a later click on the same pixel replaces an earlier one."""
    latest: dict[tuple[int, int], tuple[float, float, int]] = {}
    for x, y, label in prompt.points_xy_image:
        latest[(int(x), int(y))] = (x, y, label)
    clicks = list(latest.values())
    return (
        [(x, y) for x, y, label in clicks if label == 1],
        [(x, y) for x, y, label in clicks if label == 0],
    )


def _result(mask: np.ndarray, roi: _Roi) -> MaskResult:
    crop, x0, y0 = tight_crop(mask, roi.x0, roi.y0)
    score = 1.0 if crop.size else 0.0
    return MaskResult(mask_crop=crop, x0=x0, y0=y0, score=score)


def _local(
    points: list[tuple[float, float]], roi: _Roi, shape: tuple[int, ...]
) -> list[tuple[int, int]]:
    """(row, col) of points inside the ROI."""
    out = []
    for x, y in points:
        r, c = int(y) - roi.y0, int(x) - roi.x0
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            out.append((r, c))
    return out


def _foreground(patch: np.ndarray, object_level: float, background_level: float) -> np.ndarray:
    """Pixels past half-way from the background level to the object's level.

    A level relative to the clicked object (not Otsu's global split) keeps
    dim nuclei next to bright ones whole.
    """
    threshold = background_level + HALF_WAY * (object_level - background_level)
    return patch > threshold if object_level >= background_level else patch < threshold


def _background_level(window: np.ndarray, object_level: float, on_map: bool) -> float:
    """The background's level in `window`: its dark end behind an object
    brighter than the window's median, its bright end behind a darker one;
    on an object map (`on_map`), always its dark end (objects are bright
    there, even where the map is mostly object, as between EM membranes)."""
    low, median, high = np.percentile(
        window, (BACKGROUND_PERCENTILE, 50, 100 - BACKGROUND_PERCENTILE)
    )
    return float(low if on_map or object_level >= median else high)


def _level_at(patch: np.ndarray, seeds: list[tuple[int, int]]) -> float:
    """The object's level: the mean of the positive clicks' (their lowest
    instead was measured on object maps: EM better, nuclei worse)."""
    values = [
        float(np.median(patch[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3])) for r, c in seeds
    ]
    return float(np.mean(values))


def _segment_points(
    image: np.ndarray,
    roi: _Roi,
    positives: list[tuple[float, float]],
    negatives: list[tuple[float, float]],
    on_map: bool,
) -> tuple[np.ndarray, bool]:
    """The object's mask in the ROI, and whether the ROI is too small for it."""
    patch = image[roi.y0 : roi.y1, roi.x0 : roi.x1].astype(np.float32)
    pos = _local(positives, roi, patch.shape)
    neg = _local(negatives, roi, patch.shape)
    height, width = image.shape
    level = _level_at(patch, pos)
    foreground = _foreground(patch, level, _context_background(image, roi, level, on_map))
    open_sides = (roi.y0 > 0, roi.y1 < height, roi.x0 > 0, roi.x1 < width)
    mask, meets_edge = _split(patch, foreground, pos, neg, edge_sides=open_sides)
    too_small = meets_edge or (any(open_sides) and foreground.mean() > MAX_FOREGROUND)
    return mask, too_small


def _context_background(image: np.ndarray, roi: _Roi, object_level: float, on_map: bool) -> float:
    """The background level around the ROI: an ROI inside a big object has none."""
    pad = max(roi.x1 - roi.x0, roi.y1 - roi.y0)
    height, width = image.shape
    context = _Roi(roi.x0 - pad, roi.y0 - pad, roi.x1 + pad, roi.y1 + pad).clip(height, width)
    window = image[context.y0 : context.y1, context.x0 : context.x1]
    step = max(1, int(np.sqrt(window.size / 20_000)))  # subsample large windows
    return _background_level(window[::step, ::step].astype(np.float32), object_level, on_map)


def _segment_box(
    image: np.ndarray,
    roi: _Roi,
    positives: list[tuple[float, float]],
    negatives: list[tuple[float, float]],
    on_map: bool,
) -> tuple[np.ndarray, float]:
    """The object in the box, and its contrast with its surroundings as a
    score from 0 to 1 (see _contrast)."""
    patch = image[roi.y0 : roi.y1, roi.x0 : roi.x1].astype(np.float32)
    pos = _local(positives, roi, patch.shape)
    neg = _local(negatives, roi, patch.shape)
    h, w = patch.shape
    centre = np.s_[h // 4 : h - h // 4 or h, w // 4 : w - w // 4 or w]
    level = _level_at(patch, pos) if pos else float(np.median(patch[centre]))
    # A tight box is mostly object: read the background level around it.
    pad = max(8, (h + w) // 8)
    height, width = image.shape
    context = _Roi(roi.x0 - pad, roi.y0 - pad, roi.x1 + pad, roi.y1 + pad).clip(height, width)
    window = image[context.y0 : context.y1, context.x0 : context.x1].astype(np.float32)
    background = _background_level(window, level, on_map)
    foreground = ndi.binary_fill_holes(_foreground(patch, level, background))
    if not pos:
        # Seed the object at the deepest foreground point of the box's centre.
        distance = ndi.distance_transform_edt(np.pad(foreground, 1))[1:-1, 1:-1]
        inner = np.zeros_like(foreground)
        inner[centre] = True
        depth = np.where(inner, distance, 0.0)
        if depth.max() <= 0:
            return np.zeros_like(foreground), 0.0
        r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
        pos = [(int(r), int(c))]
    mask, _ = _split(patch, foreground, pos, neg, edge_sides=(False,) * 4)
    return mask, _contrast(window, mask, roi, context)


def _contrast(window: np.ndarray, mask: np.ndarray, roi: _Roi, context: _Roi) -> float:
    """How much the object stands out: the difference of its mean from that
    of a 3-pixel ring around it (the image scaled to [0, 1]), over
    FULL_CONTRAST, at most 1."""
    inside = np.zeros(window.shape, dtype=bool)
    y0, x0 = roi.y0 - context.y0, roi.x0 - context.x0
    inside[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask
    ring = ndi.binary_dilation(inside, iterations=3) & ~inside
    if not inside.any() or not ring.any():
        return 0.0
    difference = abs(float(window[inside].mean()) - float(window[ring].mean()))
    return min(1.0, difference / FULL_CONTRAST)


def _split(
    patch: np.ndarray,
    foreground: np.ndarray,
    positives: list[tuple[int, int]],
    negatives: list[tuple[int, int]],
    *,
    edge_sides: tuple[bool, bool, bool, bool],
) -> tuple[np.ndarray, bool]:
    """The part of `foreground` that a compact marker watershed on the image
    gradient gives to the positive seeds, and whether it meets an edge seed.

    Competing seeds: negative clicks, distance-transform maxima of other
    objects and the ROI sides in `edge_sides` (top, bottom, left, right),
    which stand for whatever lies beyond the ROI: an object that meets them
    may go on past the ROI.
    """
    if not positives:
        return np.zeros(foreground.shape, dtype=bool), False
    foreground = foreground.copy()
    for r, c in positives:
        foreground[r, c] = True
    labels, _ = ndi.label(foreground)
    region = np.isin(labels, [labels[r, c] for r, c in positives])
    # Not padded: an object cut by the ROI's edge has no peak there (the
    # edge's own seeds stand for what lies beyond).
    distance = ndi.distance_transform_edt(region)
    markers = np.zeros(region.shape, dtype=np.int32)
    _mark_competitors(markers, distance, positives)
    top, bottom, left, right = edge_sides
    edges = np.zeros(region.shape, dtype=bool)
    edges[0, :], edges[-1, :] = top, bottom
    edges[:, 0] |= left
    edges[:, -1] |= right
    markers[edges & (markers == 0)] = _EDGE
    for r, c in positives:
        radius = int(SEED_RADIUS * distance[r, c])
        window = np.s_[max(r - radius, 0) : r + radius + 1, max(c - radius, 0) : c + radius + 1]
        markers[window][region[window]] = _OBJECT
    for r, c in negatives:  # a negative click inside a seed's disk still counts
        markers[r, c] = _NEGATIVE
    for r, c in positives:
        markers[r, c] = _OBJECT
    basins = watershed(sobel(patch), markers, mask=region, compactness=COMPACTNESS)
    mask = basins == _OBJECT
    meets_edge = bool((basins[ndi.binary_dilation(mask)] == _EDGE).any())
    return mask, meets_edge


def _mark_competitors(
    markers: np.ndarray, distance: np.ndarray, positives: list[tuple[int, int]]
) -> None:
    """Seed other objects at distance maxima clearly apart from the clicks."""
    click_radius = max(max(float(distance[r, c]) for r, c in positives), 2.0)
    size = 2 * max(2, round(click_radius / 2)) + 1
    peaks = (distance == ndi.maximum_filter(distance, size=size)) & (distance >= 2.0)
    for r, c in np.argwhere(peaks):
        near = min(float(np.hypot(r - pr, c - pc)) for pr, pc in positives)
        if near > APART * (distance[r, c] + click_radius):
            markers[int(r), int(c)] = _OTHER
