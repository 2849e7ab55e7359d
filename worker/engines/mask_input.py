"""Refining a saved mask: a mask becomes the "previous result" of a decode.

"Refine" reopens an instance as the current mask so that more clicks correct
it. Engines keep what a decode carries over in `MaskResult`:

- SAM feeds the previous 1x256x256 low-resolution logits back into the mask
  decoder as its mask input. A binary mask becomes such logits as micro-sam
  does it (`_compute_logits_from_mask`): in the model frame (the image
  resized so its long side is 1024, `meta["input_size"]`, zero-padded to
  1024x1024), at a quarter of that resolution, +REFINE_LOGIT inside the
  mask and -REFINE_LOGIT outside (the inverse sigmoid of 1 - 1e-3 and of
  1e-3, smooth across the edge), and 0 over the padding, which SAM expects
  there. On a tiled embedding the logits belong to the native tile that
  holds the mask best (`tile_index`), in that tile's frame.
- The classical engine has no mask input: its decode recomputes the object
  from all the clicks. `decode_refining` keeps the saved mask as the base
  that the clicks edit: the object under the positive clicks is added to it,
  the object under the negative clicks taken out.

An engine is told apart by its embedding's meta (SAM embeddings record
`input_size`), so this module needs neither torch nor the engine classes.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.transform import resize

from worker.engines.base import EmbeddingSet, Engine, MaskResult, Prompt, tight_crop
from worker.engines.tiling import is_tiled, tile_for_box

LOW_RES = 256  # SAM's mask input is 256x256 ...
MODEL_SIZE = 1024  # ... over the 1024x1024 model frame
EPS = 1e-3
REFINE_LOGIT = float(np.log((1 - EPS) / EPS))  # about 6.9


def uses_mask_input(embedding: EmbeddingSet) -> bool:
    """Whether the embedding's engine takes a previous mask as input (SAM)."""
    if is_tiled(embedding):
        tile_meta: list[dict[str, object]] = embedding.meta["tile_meta"]  # type: ignore[assignment]
        return bool(tile_meta) and "input_size" in tile_meta[0]
    return "input_size" in embedding.meta


def mask_to_previous(embedding: EmbeddingSet, mask_full: np.ndarray) -> MaskResult:
    """A saved mask, bool (H, W) in the image frame, as the result of a decode.

    `mask_crop` is its tight crop at (x0, y0); `score` is 1. For SAM,
    `logits` are the (1, 256, 256) float32 mask input in the model frame of
    the embedding (or of tile `tile_index` of a tiled one).
    """
    mask = np.asarray(mask_full, dtype=bool)
    if mask.shape != (embedding.image_height, embedding.image_width):
        raise ValueError(
            f"a {mask.shape[1]}x{mask.shape[0]} mask given for a "
            f"{embedding.image_width}x{embedding.image_height} image"
        )
    crop, x0, y0 = tight_crop(mask, 0, 0)
    result = MaskResult(mask_crop=crop, x0=x0, y0=y0, score=1.0 if crop.size else 0.0)
    if not uses_mask_input(embedding) or crop.size == 0:
        return result
    index, meta = 0, embedding.meta
    local = mask
    if is_tiled(embedding):
        index = tile_for_box(embedding, (x0, y0, x0 + crop.shape[1], y0 + crop.shape[0]))
        tile = embedding.tiles[index]
        local = mask[tile.y0 : tile.y0 + tile.height, tile.x0 : tile.x0 + tile.width]
        meta = embedding.meta["tile_meta"][index]  # type: ignore[index]
    input_size = tuple(int(v) for v in meta["input_size"])  # type: ignore[attr-defined]
    result.logits = sam_mask_logits(local, (input_size[0], input_size[1]))
    result.tile_index = index
    return result


def sam_mask_logits(mask: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """SAM's (1, 256, 256) float32 mask input for a bool (H, W) mask.

    `input_size` is (h, w) of the image resized into the 1024 model frame;
    the mask is averaged down to (h / 4, w / 4), turned into logits of the
    covered fraction (clipped to [EPS, 1 - EPS]) and padded with zeros.
    """
    low_h = min(LOW_RES, math.ceil(input_size[0] * LOW_RES / MODEL_SIZE))
    low_w = min(LOW_RES, math.ceil(input_size[1] * LOW_RES / MODEL_SIZE))
    fraction = resize(
        np.asarray(mask, dtype=np.float32),
        (low_h, low_w),
        order=1,
        anti_aliasing=True,
        preserve_range=True,
    )
    fraction = np.clip(fraction, EPS, 1 - EPS)
    logits = np.zeros((1, LOW_RES, LOW_RES), dtype=np.float32)
    logits[0, :low_h, :low_w] = np.log(fraction / (1 - fraction))
    return logits


def decode_refining(
    engine: Engine,
    embedding: EmbeddingSet,
    prompt: Prompt,
    previous: MaskResult | None,
    base: MaskResult | None,
) -> MaskResult:
    """`engine.decode`, for a session that may have started from a saved mask.

    `base` is that mask (None: the session started from nothing). SAM
    refines it through `previous` (its logits); an engine without mask input
    edits it: base + the object under the positive clicks (or in the box)
    - the object under the negative clicks.
    """
    if base is None or uses_mask_input(embedding):
        return engine.decode(embedding, prompt, previous)
    positives = [p for p in prompt.points_xy_image if p[2] == 1]
    negatives = [p for p in prompt.points_xy_image if p[2] == 0]
    parts = [(base, True)]
    if positives or prompt.box_xyxy_image is not None:
        parts.append((engine.decode(embedding, prompt, None), True))
    if negatives:
        # The object under the negative clicks, the positive ones competing for it.
        flipped = tuple((x, y, 1 - label) for x, y, label in prompt.points_xy_image)
        parts.append((engine.decode(embedding, Prompt(points_xy_image=flipped), None), False))
    merged = _combine(parts, embedding.image_height, embedding.image_width)
    for x, y, _ in negatives:
        _set_pixel(merged, x, y, False)
    return merged


def _combine(parts: list[tuple[MaskResult, bool]], height: int, width: int) -> MaskResult:
    """Paint each part in turn (True: add it, False: take it out) over the
    union of their boxes."""
    boxes = [
        (r.x0, r.y0, r.x0 + r.mask_crop.shape[1], r.y0 + r.mask_crop.shape[0])
        for r, _ in parts
        if r.mask_crop.size
    ]
    if not boxes:
        return MaskResult(np.zeros((0, 0), dtype=bool), 0, 0, score=0.0)
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for result, add in parts:
        if not result.mask_crop.size:
            continue
        h, w = result.mask_crop.shape
        window = canvas[result.y0 - y0 : result.y0 - y0 + h, result.x0 - x0 : result.x0 - x0 + w]
        if add:
            window |= result.mask_crop
        else:
            window &= ~result.mask_crop
    crop, cx, cy = tight_crop(canvas, 0, 0)
    return MaskResult(crop, x0 + cx, y0 + cy, score=1.0 if crop.size else 0.0)


def _set_pixel(result: MaskResult, x: float, y: float, value: bool) -> None:
    r, c = int(y) - result.y0, int(x) - result.x0
    if 0 <= r < result.mask_crop.shape[0] and 0 <= c < result.mask_crop.shape[1]:
        result.mask_crop[r, c] = value
