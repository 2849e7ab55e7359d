"""Tiny SAM checkpoints for tests, built from segment_anything's own classes.

The image encoder is a small ViT (embed_dim 32, depth 2, 2 heads) that still
takes 1024px inputs in 16px patches, so its embedding is (256, 64, 64) like
the real models'; the prompt encoder and mask decoder are SAM's standard
ones (the same size in vit_b, vit_l and vit_h). Weights are random with a
fixed seed and saved as an official-format state dict (arch "custom").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from worker.engines.base import MaskResult
from worker.engines.spec import EngineSpec


def build_tiny_sam(
    *,
    seed: int = 0,
    embed_dim: int = 32,
    depth: int = 2,
    num_heads: int = 2,
    global_attn_indexes: tuple[int, ...] = (1,),
) -> Sam:
    """A randomly initialised SAM with a tiny image encoder, in eval mode."""
    torch.manual_seed(seed)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=depth,
            embed_dim=embed_dim,
            img_size=1024,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=num_heads,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=global_attn_indexes,
            window_size=14,
            out_chans=256,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(64, 64),
            input_image_size=(1024, 1024),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    # The default init leaves some tensors zero (relative positions, pos_embed);
    # perturb every weight a little so that each one matters in the tests.
    with torch.no_grad():
        for param in sam.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return sam.eval()


def save_tiny_checkpoint(path: Path, **kwargs: object) -> Path:
    """Save a tiny SAM's state dict at `path` (as the official checkpoints are saved)."""
    sam = build_tiny_sam(**kwargs)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sam.state_dict(), path)
    return path


def synthetic_cells(size: tuple[int, int] = (384, 512), seed: int = 0) -> np.ndarray:
    """An (H, W, 3) uint8 image of bright round blobs on a dark, noisy background."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[:height, :width]
    image = np.full(size, 30.0)
    for _ in range(12):
        cy, cx = rng.uniform(30, height - 30), rng.uniform(30, width - 30)
        r = rng.uniform(10, 25)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(150, 230)
    image += rng.normal(0, 8, size)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with `count` intra-op threads (one is much faster than two on a
    shared 2-core machine), restoring the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_spec(directory: Path) -> EngineSpec:
    """An EngineSpec for a tiny checkpoint saved in `directory` (not installed)."""
    checkpoint = save_tiny_checkpoint(directory / "tiny.pth")
    return EngineSpec(name="tiny", arch="custom", checkpoint_path=str(checkpoint), sha256="cd" * 32)


def result_mask(result: MaskResult, shape: tuple[int, int]) -> np.ndarray:
    """A decoded MaskResult placed in an all-False (H, W) image frame."""
    mask = np.zeros(shape, dtype=bool)
    h, w = result.mask_crop.shape
    mask[result.y0 : result.y0 + h, result.x0 : result.x0 + w] = result.mask_crop
    return mask
