"""SAM's image encoder, run in batches: the worker's heavy half of SAM.

`BatchEncoder.encode` gives what `SamPredictor.set_image` computes for each
image (ResizeLongestSide(1024), pixel mean/std, zero padding to 1024x1024,
ViT), with three differences in how, not what:

- Preprocessing stays in torch: the uint8 image is resized on the device by
  `interpolate(bilinear, antialias=True)`, which matches the PIL resize that
  SamPredictor uses to within one grey level, and is normalised once.
- Attention runs through `scaled_dot_product_attention`, with SAM's
  decomposed relative-position bias as its additive mask
  (`SdpaAttention`): the same function as segment_anything's `Attention`,
  without the three full-size copies of the 4096x4096 attention map that
  its explicit version writes in each global block.
- Optionally bfloat16 autocast, where the hardware computes it natively (CUDA,
  or a CPU with avx512_bf16 / AMX). Embeddings are still stored as float16;
  masks decoded from them agree with float32's (tests/backend/segmentation/test_compute_batch.py).

Images of one call go through the ViT together, `max_batch` at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention, get_rel_pos
from segment_anything.utils.transforms import ResizeLongestSide
from torch import nn
from torch.nn import functional

from worker.engines.sam.preprocessing import MEDSAM, SAM, medsam_input

Precision = Literal["auto", "float32", "bfloat16"]

MODEL_SIZE = 1024
# Largest attention bias built at once, in elements: one vit_b/vit_h global
# block of one image (heads x 4096 x 4096) fits, two do not.
_MAX_BIAS_ELEMENTS = 1 << 28
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class EncodedImage:
    """One image's embedding: `features` is (256, 64, 64) float16 for a 1024
    model; `input_size` is (h, w) of the resized image inside the padded
    1024x1024 model input."""

    features: np.ndarray
    input_size: tuple[int, int]


class SdpaAttention(nn.Module):
    """segment_anything's `Attention` computed by `scaled_dot_product_attention`.

    Shares its parameters with the module it replaces. The decomposed
    relative-position terms (`rel_h`, `rel_w`, from the unscaled queries, as in
    `add_decomposed_rel_pos`) are summed into a (heads, N, N) additive mask.
    """

    def __init__(self, original: Attention) -> None:
        super().__init__()
        if not original.use_rel_pos:
            raise ValueError("SdpaAttention expects SAM's relative-position attention")
        self.num_heads = original.num_heads
        self.qkv = original.qkv
        self.proj = original.proj
        self.rel_pos_h = original.rel_pos_h
        self.rel_pos_w = original.rel_pos_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) tokens, one window or the whole 64x64 grid."""
        batch, height, width, _ = x.shape
        tokens = height * width
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, head_dim)
        rel_h = get_rel_pos(height, height, self.rel_pos_h)  # (H, H, head_dim)
        rel_w = get_rel_pos(width, width, self.rel_pos_w)  # (W, W, head_dim)
        # A global block's bias is heads x 4096 x 4096: build it an image at a time.
        per_chunk = max(1, _MAX_BIAS_ELEMENTS // (self.num_heads * tokens * tokens))
        out = torch.cat(
            [
                self._attend(
                    q[i : i + per_chunk], k[i : i + per_chunk], v[i : i + per_chunk], rel_h, rel_w
                )
                for i in range(0, batch, per_chunk)
            ]
        )
        return self.proj(out.transpose(1, 2).reshape(batch, height, width, -1))

    @staticmethod
    def _attend(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor
    ) -> torch.Tensor:
        batch, heads, tokens, dim = q.shape
        grid_q = q.reshape(batch, heads, rel_h.shape[0], rel_w.shape[0], dim)
        # Contiguous terms (small) make their broadcast sum contiguous, so that
        # the (heads, N, N) view of it is free; the einsums' own layouts would
        # make the sum permuted and the reshape copy all of it.
        bias_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, rel_h).contiguous()
        bias_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, rel_w).contiguous()
        bias = (bias_h[..., :, None] + bias_w[..., None, :]).reshape(batch, heads, tokens, tokens)
        # The default scale, head_dim ** -0.5, is SAM's.
        return functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def use_sdpa_attention(encoder: ImageEncoderViT) -> int:
    """Replace every block's attention of `encoder` in place; the count replaced."""
    count = 0
    for block in encoder.blocks:
        if isinstance(block.attn, Attention):
            block.attn = SdpaAttention(block.attn)
            count += 1
    return count


@lru_cache(maxsize=1)
def cpu_computes_bf16() -> bool:
    """Whether this CPU has native bfloat16 dot products (else bf16 is emulated, slower)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return any(flag in flags.split() for flag in _CPU_BF16_FLAGS)


def pick_device(name: str = "auto") -> torch.device:
    """The device `name` names; for "auto", CUDA when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_dtype(device: torch.device, precision: Precision) -> torch.dtype:
    """The autocast dtype for `precision` ("auto": bfloat16 where it is native)."""
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if device.type == "cpu" and cpu_computes_bf16() else torch.float32


def default_max_batch(device: torch.device) -> int:
    """Images per ViT pass: on a GPU batching fills the device; on a CPU the
    matrices are already large, so a few images bound the memory held."""
    return 8 if device.type == "cuda" else 2


class BatchEncoder:
    """A SAM ViT image encoder with its pixel normalisation, on one device."""

    def __init__(
        self,
        encoder: ImageEncoderViT,
        pixel_mean: torch.Tensor,
        pixel_std: torch.Tensor,
        *,
        device: str = "auto",
        precision: Precision = "float32",
        max_batch: int = 0,
        sdpa: bool = True,
        preprocessing: str = SAM,
    ) -> None:
        self.preprocessing = preprocessing
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, precision)
        self.max_batch = max_batch or default_max_batch(self.device)
        if sdpa:
            use_sdpa_attention(encoder)
        self.encoder = encoder.eval().to(self.device)
        self.pixel_mean = pixel_mean.reshape(3, 1, 1).to(self.device, torch.float32)
        self.pixel_std = pixel_std.reshape(3, 1, 1).to(self.device, torch.float32)
        self.resize = ResizeLongestSide(MODEL_SIZE)

    def encode(self, images_rgb: Sequence[np.ndarray]) -> list[EncodedImage]:
        """Embeddings of (H, W, 3) uint8 RGB images, in order."""
        results: list[EncodedImage] = []
        for batch in _chunks(images_rgb, self.max_batch):
            inputs, sizes = zip(*(self.preprocess(image) for image in batch), strict=True)
            with torch.inference_mode(), self._autocast():
                features = self.encoder(torch.stack(inputs))
            features = features.to("cpu", torch.float16).numpy()
            results.extend(EncodedImage(f, s) for f, s in zip(features, sizes, strict=True))
        return results

    def preprocess(self, image_rgb: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """The normalised, zero-padded (3, 1024, 1024) float32 input and the
        resized (h, w), as SamPredictor.set_image makes them (or MedSAM's
        reference inference: worker/engines/sam/preprocessing.py)."""
        if self.preprocessing == MEDSAM:
            x = torch.from_numpy(medsam_input(image_rgb)).to(self.device)
            return x, (MODEL_SIZE, MODEL_SIZE)
        height, width = image_rgb.shape[:2]
        size = self.resize.get_preprocess_shape(height, width, MODEL_SIZE)
        with torch.inference_mode():
            pixels = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(self.device)
            pixels = pixels.permute(2, 0, 1)[None]
            if size != (height, width):
                pixels = _resize_like_pil(pixels, size)
            x = (pixels[0].float() - self.pixel_mean) / self.pixel_std
            x = functional.pad(x, (0, MODEL_SIZE - size[1], 0, MODEL_SIZE - size[0]))
        return x, size

    def _autocast(self) -> AbstractContextManager[object]:
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def _resize_like_pil(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, 3, h, w) uint8 resized to `size` by antialiased bilinear, rounded to uint8."""
    if pixels.device.type == "cpu":
        # torch's uint8 kernel follows PIL's fixed-point arithmetic.
        return functional.interpolate(pixels, size=size, mode="bilinear", antialias=True)
    resized = functional.interpolate(pixels.float(), size=size, mode="bilinear", antialias=True)
    return resized.round_().clamp_(0, 255)


def _chunks(items: Sequence[np.ndarray], size: int) -> Iterator[Sequence[np.ndarray]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
