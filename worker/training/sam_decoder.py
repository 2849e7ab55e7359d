"""Adapting SAM's prompt encoder and mask decoder to a project, on the
embeddings the worker already computed (the image encoder is untouched, so
every stored embedding stays valid).

SAM's interactive training recipe (Kirillov et al. 2023, section 3 and
appendix A), on the project's curated instances:

1. Each object starts from one prompt, a point drawn uniformly inside it or
   its bounding box with noise (a tenth of the box's side, at most 20
   pixels), with three candidate masks; the candidate with the lowest loss
   is the one trained.
2. CORRECTIONS more clicks follow, each drawn uniformly from the error of
   the previous prediction (positive in what it missed, negative in what it
   added), with the previous low-resolution logits fed back as the mask
   prompt, one mask each.
3. Loss: 20 x focal + dice on the 256 x 256 logits against the object
   resized to the same frame, plus the mean squared error between the
   predicted IoU and the IoU the mask has.

Everything is in SAM's own frames: an embedding of a tile covers the tile
resized so its long side is 1024 and padded to 1024 x 1024; its low-res
logits cover that square at a quarter of its size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch.nn import functional

from worker.engines.base import EmbeddingSet
from worker.engines.sam.loading import DECODER_PREFIXES, IMAGE_SIZE, DecoderParts
from worker.engines.tiling import is_tiled, native_tiles, tile_view
from worker.training.cancelling import TrainingCancelledError

CORRECTIONS = 3
LOW_RES = 256
FOCAL_WEIGHT, DICE_WEIGHT = 20.0, 1.0
BATCH = 16  # objects of one image per step
MAX_OBJECTS = 64  # per image and epoch, drawn afresh each epoch
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.01
BOX_NOISE, BOX_NOISE_MAX = 0.1, 20.0


@dataclass(frozen=True)
class View:
    """One embedding (an image, or a tile of one) and its objects in SAM's
    low-res frame: bool (N, 256, 256) masks of the padded square."""

    features: np.ndarray  # (256, 64, 64)
    masks: np.ndarray  # (N, 256, 256) bool
    input_size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)  # what the pixels cover of 1024
    complete: bool = False  # every object of the image is labelled


def low_res_masks(
    masks: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
) -> np.ndarray:
    """Objects of a tile's frame (N, H, W) in the low-res frame of its
    embedding (N, 256, 256): resized as the image was, padded like it."""
    if masks.shape[1:] != original_size:
        raise ValueError(f"masks {masks.shape[1:]} do not match the image {original_size}")
    height, width = (round(v * LOW_RES / IMAGE_SIZE) for v in input_size)
    resized = functional.interpolate(torch.from_numpy(masks[:, None].astype(np.float32)),
                            size=(height, width), mode="area")[:, 0]  # fmt: skip
    out = torch.zeros((masks.shape[0], LOW_RES, LOW_RES))
    out[:, :height, :width] = resized
    return (out >= 0.5).numpy()


def _parameters(decoder: DecoderParts) -> list[torch.nn.Parameter]:
    return [*decoder.prompt_encoder.parameters(), *decoder.mask_decoder.parameters()]


def _train_mode(decoder: DecoderParts, mode: bool) -> None:
    decoder.prompt_encoder.train(mode)
    decoder.mask_decoder.train(mode)


def decoder_save(decoder: DecoderParts, path: Path) -> None:
    """The two modules' weights as safetensors (no pickle), in the official
    checkpoint's key names (sam_loading.load_decoder_override reads them)."""
    state = {}
    for prefix, module in zip(DECODER_PREFIXES, (decoder.prompt_encoder, decoder.mask_decoder),
                              strict=True):  # fmt: skip
        state.update({prefix + k: v.detach().contiguous() for k, v in module.state_dict().items()})
    save_file(state, str(path))


def _decode(
    decoder: DecoderParts,
    features: torch.Tensor,
    points: tuple[torch.Tensor, torch.Tensor] | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    sparse, dense = decoder.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
    return decoder.mask_decoder(
        image_embeddings=features, image_pe=decoder.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )  # fmt: skip


def _losses(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, M) loss of each of M candidate masks per object; target (B, 256, 256)."""
    target = target[:, None].expand_as(logits)
    prob = torch.sigmoid(logits)
    ce = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha = 0.25 * target + 0.75 * (1 - target)
    focal = (alpha * ce * (1 - p_t) ** 2).mean(dim=(-1, -2))
    inter = (prob * target).sum(dim=(-1, -2))
    dice = 1 - (2 * inter + 1) / (prob.sum(dim=(-1, -2)) + target.sum(dim=(-1, -2)) + 1)
    hard = logits > 0
    union = (hard | (target > 0.5)).sum(dim=(-1, -2)).clamp(min=1)
    actual = (hard & (target > 0.5)).sum(dim=(-1, -2)) / union
    return FOCAL_WEIGHT * focal + DICE_WEIGHT * dice + (iou_pred - actual.detach()) ** 2


def _sample_inside(regions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 2) xy in the 1024 frame of a uniformly drawn pixel of each region
    (B, 256, 256); an empty region gives its centre."""
    batch = regions.shape[0]
    flat = regions.reshape(batch, -1).float()
    weights = torch.where(flat.sum(dim=1, keepdim=True) > 0, flat, torch.ones_like(flat))
    index = torch.multinomial(weights, 1, generator=generator)[:, 0]
    ys, xs = index // LOW_RES, index % LOW_RES
    scale = IMAGE_SIZE / LOW_RES
    return torch.stack([(xs + 0.5) * scale, (ys + 0.5) * scale], dim=1).float()


def _noisy_boxes(targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    boxes = []
    scale = IMAGE_SIZE / LOW_RES
    for target in targets:
        ys, xs = torch.nonzero(target, as_tuple=True)
        x0, y0 = float(xs.min()) * scale, float(ys.min()) * scale
        x1, y1 = float(xs.max() + 1) * scale, float(ys.max() + 1) * scale
        noise = torch.randn(4, generator=generator)
        sides = torch.tensor([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
        jitter = (noise * BOX_NOISE * sides).clamp(-BOX_NOISE_MAX, BOX_NOISE_MAX)
        box = torch.tensor([x0, y0, x1, y1]) + jitter
        boxes.append(box.clamp(0, IMAGE_SIZE))
    return torch.stack(boxes)


def interactive_loss(
    decoder: DecoderParts,
    features: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    *,
    use_box: bool,
    corrections: int = CORRECTIONS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's loss over one batch of objects of one embedding, and
    the IoU of each object's first mask (B,)."""
    batch = targets.shape[0]
    if use_box:
        logits, iou_pred = _decode(decoder, features, None, _noisy_boxes(targets, generator),
                                   None, multimask=False)  # fmt: skip
        coords = torch.zeros((batch, 0, 2))
    else:
        coords = _sample_inside(targets, generator)[:, None]
        logits, iou_pred = _decode(decoder, features, (coords, torch.ones((batch, 1))), None,
                                   None, multimask=True)  # fmt: skip
    losses = _losses(logits, iou_pred, targets.float())
    best = losses.argmin(dim=1)
    rows = torch.arange(batch)
    total = losses[rows, best].mean()
    current = logits[rows, best]
    first_iou = _iou(current > 0, targets)
    labels = torch.ones((batch, coords.shape[1]))
    for _ in range(corrections):
        predicted = current.detach() > 0
        missed, extra = targets & ~predicted, predicted & ~targets
        positive = missed.sum(dim=(-1, -2)) >= extra.sum(dim=(-1, -2))
        region = torch.where(positive[:, None, None], missed, extra)
        coords = torch.cat([coords, _sample_inside(region, generator)[:, None]], dim=1)
        labels = torch.cat([labels, positive.float()[:, None]], dim=1)
        logits, iou_pred = _decode(decoder, features, (coords, labels), None,
                                   current.detach()[:, None], multimask=False)  # fmt: skip
        total = total + _losses(logits, iou_pred, targets.float())[:, 0].mean()
        current = logits[:, 0]
    return total / (1 + corrections), first_iou


def _iou(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    union = (predicted | targets).sum(dim=(-1, -2)).clamp(min=1)
    return (predicted & targets).sum(dim=(-1, -2)) / union


def one_click_iou(decoder: DecoderParts, view: View) -> list[float]:
    """IoU (low-res frame) of each object after one click at its deepest
    point, the candidate SAM rates best: what the annotator sees first."""
    from scipy import ndimage as ndi  # only the evaluation needs it

    found = []
    features = torch.from_numpy(view.features).float()[None]
    with torch.no_grad():
        for mask in view.masks:
            depth = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
            y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
            scale = IMAGE_SIZE / LOW_RES
            coords = torch.tensor([[[(x + 0.5) * scale, (y + 0.5) * scale]]], dtype=torch.float32)
            logits, iou_pred = _decode(decoder, features, (coords, torch.ones((1, 1))), None,
                                       None, multimask=True)  # fmt: skip
            best = logits[0, int(iou_pred[0].argmax())] > 0
            found.append(float(_iou(best[None], torch.from_numpy(mask)[None])[0]))
    return found


def decoder_train(
    decoder: DecoderParts,
    train: Sequence[View],
    val: Sequence[View],
    *,
    epochs: int,
    seed: int = 0,
    max_objects: int = MAX_OBJECTS,
    corrections: int = CORRECTIONS,
    stage_done: Callable[[dict[str, Any]], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Train in place; the curve, one point per epoch: training loss, the
    validation loss (the same recipe, fixed draws) and the validation IoU
    after one click."""
    if not any(v.masks.shape[0] for v in train):
        raise ValueError("the training images have no objects")
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(_parameters(decoder), lr=LEARNING_RATE,
                                  weight_decay=WEIGHT_DECAY)  # fmt: skip
    rng = np.random.default_rng(seed)
    curve: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        if cancelled is not None and cancelled():
            raise TrainingCancelledError
        _train_mode(decoder, True)
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        losses = []
        for view in rng.permutation(len(train)):
            chosen = train[view]
            order = rng.permutation(chosen.masks.shape[0])[:max_objects]
            features = torch.from_numpy(chosen.features).float()[None]
            for start in range(0, order.size, BATCH):
                targets = torch.from_numpy(chosen.masks[order[start : start + BATCH]])
                loss, _ = interactive_loss(decoder, features, targets, generator,
                                           use_box=bool(rng.random() < 0.5),
                                           corrections=corrections)  # fmt: skip
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        _train_mode(decoder, False)
        point = {"epoch": epoch, "epochs": epochs, "loss": float(np.mean(losses)),
                 **decoder_validation(decoder, val, seed, max_objects, corrections)}  # fmt: skip
        curve.append(point)
        if stage_done is not None:
            stage_done(point)
    return curve


def decoder_validation(
    decoder: DecoderParts, val: Sequence[View], seed: int, max_objects: int, corrections: int
) -> dict[str, Any]:
    """{"val_loss", "val_iou"}: the recipe's loss with fixed draws and the IoU
    after one click on the validation views (None without objects)."""
    if not any(v.masks.shape[0] for v in val):
        return {"val_loss": None, "val_iou": None}
    generator = torch.Generator().manual_seed(seed + 7)
    losses, ious = [], []
    with torch.no_grad():
        for view in val:
            features = torch.from_numpy(view.features).float()[None]
            for start in range(0, min(view.masks.shape[0], max_objects), BATCH):
                targets = torch.from_numpy(view.masks[start : min(start + BATCH, max_objects)])
                loss, _ = interactive_loss(decoder, features, targets, generator, use_box=False,
                                           corrections=corrections)  # fmt: skip
                losses.append(float(loss))
            ious += one_click_iou(decoder, View(view.features, view.masks[:max_objects]))
    return {"val_loss": float(np.mean(losses)), "val_iou": float(np.mean(ious))}


MIN_PIXELS_IN_TILE = 20


def embedding_views(
    embedding: EmbeddingSet, masks: Sequence[np.ndarray], *, complete: bool = False
) -> list[View]:
    """The training views of one stored embedding and its image's objects
    (bool (H, W) masks): the embedding itself, or each native tile of a tiled
    one with the objects that lie mostly inside it. `complete`: the image's
    every object is among `masks`."""
    if not is_tiled(embedding):
        return [_view(embedding, list(masks), complete)]
    views = []
    for index in native_tiles(embedding):
        tile = embedding.tiles[index]
        inside = []
        for mask in masks:
            crop = mask[tile.y0 : tile.y0 + tile.height, tile.x0 : tile.x0 + tile.width]
            count = int(crop.sum())
            if count >= MIN_PIXELS_IN_TILE and 2 * count >= int(mask.sum()):
                inside.append(crop)
        if inside:
            views.append(_view(tile_view(embedding, index), inside, complete))
    return views


def _view(embedding: EmbeddingSet, masks: list[np.ndarray], complete: bool) -> View:
    input_size = tuple(int(v) for v in embedding.meta["input_size"])  # type: ignore[attr-defined]
    original = (embedding.image_height, embedding.image_width)
    stacked = np.stack(masks) if masks else np.zeros((0, *original), dtype=bool)
    low = low_res_masks(stacked, (input_size[0], input_size[1]), original)
    keep = low.reshape(low.shape[0], -1).any(axis=1)  # too small to survive the resize
    return View(np.asarray(embedding.arrays[0], dtype=np.float32), low[keep],
                (input_size[0], input_size[1]), complete)  # fmt: skip
