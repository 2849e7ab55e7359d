"""SAM's output upscaling and mask product, for the exported decoder graphs.

Channels-last: each 2x2 stride-2 transposed convolution is a per-pixel
MatMul, LayerNorm2d a LayerNormalization over the last axis, run in
UPSCALE_BANDS bands of grid rows; the logits leave the graph in block order
and `mask_frames` puts them in 256x256 order in NumPy. The first product
can be taken in low rank from the image's basis (`Upscaling.low_rank`). The
derivation: README.md beside this file, section 6.
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder
from torch import nn
from torch.nn import functional

from worker.engines.sam.decoder.low_rank import (
    BlockFactors,
    TokenProduct,
    TokenUpdate,
    chained_weights,
    low_rank,
)

GRID = 64
UPSCALE_BANDS = 16


def first_product_weight(mask_decoder: MaskDecoder) -> torch.Tensor:
    """(256, 256): the first transposed convolution as a per-pixel matrix
    (columns ordered a, b, channel of the 2x2 block)."""
    conv, _, _, _, _ = mask_decoder.output_upscaling
    return conv.weight.permute(0, 2, 3, 1).reshape(conv.in_channels, -1)


def basis_weight(mask_decoder: MaskDecoder) -> torch.Tensor:
    """M_1: the image tokens times this is the image's upscaling basis."""
    with torch.no_grad():
        depth = len(mask_decoder.transformer.layers)
        return chained_weights(mask_decoder, depth, first_product_weight(mask_decoder))[0].clone()


class Upscaling(nn.Module):
    """Low-res mask logits from the image tokens after the two-way blocks."""

    up1_weight: torch.Tensor
    up1_bias: torch.Tensor
    up2_weight: torch.Tensor
    up2_bias: torch.Tensor

    def __init__(self, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        # segment_anything's: ConvTranspose2d, LayerNorm2d, GELU, ConvTranspose2d, GELU.
        conv1, norm, _, conv2, _ = mask_decoder.output_upscaling
        self.norm = norm
        with torch.no_grad():
            self.register_buffer("up1_weight", first_product_weight(mask_decoder).clone())
            self.register_buffer("up1_bias", conv1.bias.repeat(4))
            self.register_buffer("up2_weight", conv2.weight.permute(0, 2, 3, 1).reshape(64, -1))
            self.register_buffer("up2_bias", conv2.bias.repeat(4))
        depth = len(mask_decoder.transformer.layers)
        self.product = TokenProduct(mask_decoder, depth, self.up1_weight, self.up1_bias)

    def dense(self, keys: torch.Tensor, hyper_in: torch.Tensor) -> torch.Tensor:
        """(65536, K) mask logits in block order (`mask_frames`) from the final
        image tokens (4096, 256) and K rows of hyper_in."""
        bands = keys.chunk(UPSCALE_BANDS, dim=0)
        return self._finish([band @ self.up1_weight + self.up1_bias for band in bands], hyper_in)

    def low_rank(
        self,
        basis: list[torch.Tensor],
        factors: list[BlockFactors],
        hyper_in: torch.Tensor,
        update: TokenUpdate | None = None,
    ) -> torch.Tensor:
        """`dense` from the image's upscaling basis (4096, 256, in its
        UPSCALE_BANDS bands of rows) and each
        block's factors, without the final tokens; `update` is a refinement's
        mask input (mask_prompt.py)."""
        # The product is s * (basis + coefficient^T row), s > 0 a scale per
        # token. LayerNorm2d, next, normalises each pixel's 64 channels, and a
        # token's four pixels share its s, so s changes only the norm's epsilon
        # (1e-6, against variances of order 1): it is left out (README.md, 6.3).
        _, coefficient, row = low_rank(self.product, factors, update)  # (R, 4096), (R, 256)
        parts = zip(basis, coefficient.chunk(UPSCALE_BANDS, dim=1), strict=True)
        return self._finish([torch.addmm(b, c.transpose(0, 1), row) for b, c in parts], hyper_in)

    def _finish(self, bands: list[torch.Tensor], hyper_in: torch.Tensor) -> torch.Tensor:
        """The rest of the upscaling from each band's first product (with bias)."""
        norm = self.norm
        parts = []
        for band in bands:
            x = band.reshape(-1, 64)
            x = functional.gelu(functional.layer_norm(x, (64,), norm.weight, norm.bias, norm.eps))
            x = functional.gelu(x @ self.up2_weight + self.up2_bias).reshape(-1, 32)
            parts.append(x @ hyper_in.transpose(0, 1))
        # Rows (i, j, a, b, c, d): pixel y = 4i + 2a + c, x = 4j + 2b + d; columns
        # the masks. `mask_frames` puts them in 256x256 order, outside the graph.
        return torch.cat(parts).reshape(GRID * GRID * 16, -1)


def mask_frames(blocks: np.ndarray) -> np.ndarray:
    """(K, 256, 256) logits from the graphs' (1, 65536, K) block-ordered output."""
    count = blocks.shape[-1]
    grid = blocks.reshape(GRID, GRID, 2, 2, 2, 2, count)
    side = GRID * 4
    return np.ascontiguousarray(grid.transpose(6, 0, 2, 4, 1, 3, 5)).reshape(count, side, side)
