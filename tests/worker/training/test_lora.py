"""LoRA on SAM's image encoder and mask decoder (CellSeg1's recipe, through
peft), with a tiny SAM built from segment_anything's classes on crops of the
real DSB 2018 nuclei: training lowers the loss and the validation loss, only
the adapted layers change, the merged weights compute what the adapters
did, and the saved safetensors load as a SAM model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from tests.conftest import shared_data
from tests.tiny_sam import build_tiny_sam, torch_threads
from worker import rle
from worker.datasets.label_image import unpaint
from worker.engines.sam.encoder import BatchEncoder
from worker.engines.sam.loading import load_sam, read_state_dict
from worker.training.lora import (
    CROP,
    LoraImage,
    crops,
    lora_merge,
    lora_save,
    lora_train,
    lora_wrap,
)

pytestmark = pytest.mark.slow

SIDE = 128


@pytest.fixture(scope="module")
def images() -> list[LoraImage]:
    image = tifffile.imread(shared_data("nuclei_dsb2018/image.tif")).astype(np.float32)
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    low, high = np.percentile(image, (0.5, 99.5))
    gray = np.clip((image - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    found = []
    for y, x in ((0, 0), (0, 128), (256, 256)):
        masks = [rle.decode(r) for _, r in unpaint(labels[y : y + SIDE, x : x + SIDE])]
        found.append(LoraImage(np.stack([gray[y : y + SIDE, x : x + SIDE]] * 3, -1), masks))
    return found


def test_lora_learns_and_merges_into_an_official_model(
    images: list[LoraImage], tmp_path: Path
) -> None:
    base = build_tiny_sam()
    original = {k: v.clone() for k, v in base.state_dict().items()}
    sam = build_tiny_sam()
    model = lora_wrap(sam, rank=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    encoder = BatchEncoder(sam.image_encoder, sam.pixel_mean, sam.pixel_std, device="cpu")
    with torch_threads(1):
        curve = lora_train(model, encoder, images[:2], images[2:], epochs=3, objects=4,
                           corrections=1)  # fmt: skip
        assert [p["epoch"] for p in curve] == [1, 2, 3]
        assert curve[-1]["loss"] < curve[0]["loss"]
        assert curve[-1]["val_loss"] < curve[0]["val_loss"]
        pixels, _ = encoder.preprocess(images[2].rgb)
        model.eval()
        with torch.no_grad():
            adapted = sam.image_encoder(pixels[None].clone())
        state = lora_merge(model)
    assert state.keys() == original.keys()
    changed = {k for k in state if not torch.equal(state[k], original[k])}
    assert any(".attn.qkv." in k for k in changed)
    assert any(k.startswith("mask_decoder.transformer.") and "_proj" in k for k in changed)
    assert all(".attn.qkv." in k or "q_proj" in k or "v_proj" in k for k in changed)

    lora_save(state, tmp_path / "lora.safetensors")
    assert read_state_dict(tmp_path / "lora.safetensors").keys() == original.keys()
    merged = load_sam(tmp_path / "lora.safetensors", "custom")
    with torch.no_grad(), torch_threads(1):
        again = merged.image_encoder(pixels[None].clone())
    torch.testing.assert_close(again, adapted, atol=1e-4, rtol=1e-4)


def test_a_large_image_trains_in_crops() -> None:
    rgb = np.zeros((CROP + 300, 2 * CROP, 3), dtype=np.uint8)
    inside = np.zeros(rgb.shape[:2], dtype=bool)
    inside[10:50, 10:50] = True
    straddling = np.zeros(rgb.shape[:2], dtype=bool)
    straddling[CROP - 10 : CROP + 40, 100:140] = True  # mostly in the lower crop
    pieces = list(crops(LoraImage(rgb, [inside, straddling])))
    assert [p.rgb.shape[:2] for p in pieces] == [(CROP, CROP), (300, CROP)]
    assert [len(p.masks) for p in pieces] == [1, 1]
    assert pieces[1].masks[0].sum() == 40 * 40
