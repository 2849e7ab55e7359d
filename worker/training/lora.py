"""LoRA on SAM's image encoder and mask decoder: CellSeg1's recipe (Zhou et
al. 2024: low-rank adapters of rank 4 on the image encoder's attention and
the mask decoder's, everything else frozen), through peft's LoRA.

Adapters go on the ViT blocks' `attn.qkv` and on the query and value
projections of the mask decoder's two-way transformer. Each step embeds one
training image through the adapted encoder (with gradients), then applies
SAM's interactive recipe (worker/training/sam_decoder.py: a point or a
noisy box, correction clicks from the error, previous logits fed back) to
up to `objects` of its objects; the loss flows back into both adapters.

The adapted encoder makes new embeddings, so the result is a whole model:
`lora_merge` folds the adapters into the weights (peft's merge_and_unload)
and gives the official SAM state dict, saved as safetensors.

Images larger than SAM's 1024 input are trained on in crops of at most
CROP pixels a side (an object counts in the crop that holds most of it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import save_file
from segment_anything.modeling import Sam

from worker.engines.sam.encoder import BatchEncoder
from worker.engines.sam.loading import IMAGE_SIZE, DecoderParts
from worker.training.cancelling import TrainingCancelledError
from worker.training.sam_decoder import (
    CORRECTIONS,
    View,
    decoder_validation,
    interactive_loss,
    low_res_masks,
)

if TYPE_CHECKING:  # peft imports transformers: seconds, so only when LoRA trains
    from peft import PeftModel

RANK = 4
LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.01
OBJECTS = 16  # per image and step
CROP = IMAGE_SIZE
MIN_PIXELS = 20
TARGETS = (
    r".*image_encoder\.blocks\.\d+\.attn\.qkv"
    r"|.*mask_decoder\.transformer\..*(q_proj|v_proj)"
)


@dataclass(frozen=True)
class LoraImage:
    """An image as the model sees it and its objects' bool (H, W) masks."""

    rgb: np.ndarray
    masks: list[np.ndarray]


def lora_wrap(sam: Sam, rank: int = RANK) -> PeftModel:
    """`sam` with rank-`rank` adapters; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=TARGETS)
    return get_peft_model(sam, config)


def lora_merge(model: PeftModel) -> dict[str, torch.Tensor]:
    """The adapters folded into the weights: an official SAM state dict."""
    merged = model.merge_and_unload()
    return {key: value.detach().contiguous() for key, value in merged.state_dict().items()}


def lora_save(state: dict[str, torch.Tensor], path: Path) -> None:
    save_file(state, str(path), metadata={"format": "sam", "adapted": "lora"})


def crops(image: LoraImage) -> Iterator[LoraImage]:
    """The image, or its CROP x CROP pieces when it is larger than SAM's
    input; only pieces with objects (an image without any teaches nothing)."""
    height, width = image.rgb.shape[:2]
    if not image.masks:
        return
    if max(height, width) <= CROP:
        yield image
        return
    for y in range(0, height, CROP):
        for x in range(0, width, CROP):
            inside = []
            for mask in image.masks:
                piece = mask[y : y + CROP, x : x + CROP]
                count = int(piece.sum())
                if count >= MIN_PIXELS and 2 * count >= int(mask.sum()):
                    inside.append(piece)
            if inside:
                yield LoraImage(image.rgb[y : y + CROP, x : x + CROP], inside)


@dataclass(frozen=True)
class _Prepared:
    pixels: torch.Tensor  # (3, 1024, 1024) normalised and padded
    masks: np.ndarray  # (N, 256, 256) bool in the low-res frame


def _prepare(encoder: BatchEncoder, image: LoraImage) -> _Prepared:
    pixels, size = encoder.preprocess(image.rgb)
    stacked = np.stack(image.masks)
    low = low_res_masks(stacked, size, image.rgb.shape[:2])
    keep = low.reshape(low.shape[0], -1).any(axis=1)
    return _Prepared(pixels.clone(), low[keep])


def lora_train(
    model: PeftModel,
    encoder: BatchEncoder,
    train: Sequence[LoraImage],
    val: Sequence[LoraImage],
    *,
    epochs: int,
    seed: int = 0,
    objects: int = OBJECTS,
    corrections: int = CORRECTIONS,
    stage_done: Callable[[dict[str, Any]], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Train the adapters in place; `encoder` preprocesses as the engine does
    (its module is the wrapped model's image encoder). The curve, one point
    per epoch: the training loss, and on the validation images (embedded by
    the adapted encoder) the recipe's loss and the IoU after one click."""
    train_items = [_prepare(encoder, piece) for image in train for piece in crops(image)]
    train_items = [item for item in train_items if item.masks.shape[0]]
    if not train_items:
        raise ValueError("the training images have no objects")
    val_items = [_prepare(encoder, piece) for image in val for piece in crops(image)]
    sam: Sam = model.base_model.model
    decoder = DecoderParts(sam.prompt_encoder, sam.mask_decoder)
    device = encoder.device
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)  # fmt: skip
    curve: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        if cancelled is not None and cancelled():
            raise TrainingCancelledError
        model.train()
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        losses = []
        for index in rng.permutation(len(train_items)):
            item = train_items[index]
            chosen = rng.permutation(item.masks.shape[0])[:objects]
            features = sam.image_encoder(item.pixels[None].to(device)).cpu()
            targets = torch.from_numpy(item.masks[chosen])
            loss, _ = interactive_loss(decoder, features, targets, generator,
                                       use_box=bool(rng.random() < 0.5),
                                       corrections=corrections)  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        model.eval()
        point = {"epoch": epoch, "epochs": epochs, "loss": float(np.mean(losses)),
                 **_validation(sam, decoder, val_items, seed, objects, corrections)}  # fmt: skip
        curve.append(point)
        if stage_done is not None:
            stage_done(point)
    return curve


def _validation(
    sam: Sam,
    decoder: DecoderParts,
    items: Sequence[_Prepared],
    seed: int,
    objects: int,
    corrections: int,
) -> dict[str, Any]:
    device = next(sam.image_encoder.parameters()).device
    views = []
    with torch.no_grad():
        for item in items:
            features = sam.image_encoder(item.pixels[None].to(device))[0].float().cpu().numpy()
            views.append(View(features, item.masks))
    return decoder_validation(decoder, views, seed, objects, corrections)
