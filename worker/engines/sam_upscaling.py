"""SAM's output upscaling and mask product, for the exported decoder graphs.

Channels-last: a 2x2 stride-2 transposed convolution is a per-pixel matrix
product (each input pixel makes its own 2x2 block), so both of them are plain
MatMuls, LayerNorm2d is a LayerNormalization over the last axis, and the
pixels are put in 256x256 order only at the end, outside the graph
(`mask_frames`: NumPy's strided copy takes half the time of ONNX Runtime's
7-D Transpose). It runs in bands of
grid rows, so each band's intermediates stay in the cache.

The first product can also be taken in low rank (`low_rank`). The image
tokens reach it through the two-way blocks, each of which adds an attention
output of rank heads x T (T: the prompt's few tokens) and applies a
LayerNorm (a per-row shift and scale, then a fixed per-channel one). So the
product of the final tokens with the 256x256 weight is

    scale_1 * (tokens M_1) + sum over blocks l of rank-(heads T + 2) terms,

with M_l the weight after the per-channel scales of blocks l.., the image's
`tokens M_1` (the image state's up_basis) computed once per image like the other image
state, and the rest from the attention weights, values and the LayerNorm
statistics of the click: 2 x (heads T + 1) + 2 = 116 columns a token (T = 7)
instead of 256 (exact up to float rounding).
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder
from torch import nn
from torch.nn import functional

GRID = 64
UPSCALE_BANDS = 16

# One two-way block's contribution: the attention weights (heads*T, 4096),
# the folded values (heads*T, 256), and the LayerNorm's mean and 1/std (4096, 1).
BlockFactors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def first_product_weight(mask_decoder: MaskDecoder) -> torch.Tensor:
    """(256, 256): the first transposed convolution as a per-pixel matrix
    (columns ordered a, b, channel of the 2x2 block)."""
    conv = mask_decoder.output_upscaling[0]
    return conv.weight.permute(0, 2, 3, 1).reshape(conv.in_channels, -1)


def _chained_weights(mask_decoder: MaskDecoder) -> list[torch.Tensor]:
    """M_1 .. M_L: the first product's weight after the per-channel LayerNorm
    scales of blocks l .. L (each block's norm4)."""
    chained = [first_product_weight(mask_decoder)]
    for block in reversed(mask_decoder.transformer.layers):
        chained.insert(0, block.norm4.weight[:, None] * chained[0])
    return chained[:-1]


def basis_weight(mask_decoder: MaskDecoder) -> torch.Tensor:
    """M_1: the image tokens times this is the image's upscaling basis."""
    with torch.no_grad():
        return _chained_weights(mask_decoder)[0].clone()


class Upscaling(nn.Module):
    """Low-res mask logits from the image tokens after the two-way blocks."""

    up1_weight: torch.Tensor
    up1_bias: torch.Tensor
    up2_weight: torch.Tensor
    up2_bias: torch.Tensor
    const: torch.Tensor

    def __init__(self, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        up = mask_decoder.output_upscaling
        conv2 = up[3]
        self.norm = up[1]
        with torch.no_grad():
            self.register_buffer("up1_weight", first_product_weight(mask_decoder).clone())
            self.register_buffer("up1_bias", up[0].bias.repeat(4))
            self.register_buffer("up2_weight", conv2.weight.permute(0, 2, 3, 1).reshape(64, -1))
            self.register_buffer("up2_bias", conv2.bias.repeat(4))
            blocks = mask_decoder.transformer.layers
            chained = [*_chained_weights(mask_decoder), self.up1_weight]
            for index, weight in enumerate(chained[:-1]):
                self.register_buffer(f"chain{index}", weight.clone())
                self.register_buffer(f"colsum{index}", weight.sum(dim=0, keepdim=True))
                # The block's shift goes through the next blocks' scales only.
                shift = blocks[index].norm4.bias[None] @ chained[index + 1]
                if index + 1 < len(blocks):
                    self.register_buffer(f"shift{index}", shift)
                else:
                    self.register_buffer("const", shift + self.up1_bias)
        self.blocks = len(blocks)

    def dense(self, keys: torch.Tensor, hyper_in: torch.Tensor) -> torch.Tensor:
        """(65536, K) mask logits in block order (`mask_frames`) from the final
        image tokens (4096, 256) and K rows of hyper_in."""
        bands = keys.chunk(UPSCALE_BANDS, dim=0)
        return self._finish([band @ self.up1_weight + self.up1_bias for band in bands], hyper_in)

    def low_rank(
        self,
        basis: torch.Tensor,
        factors: list[BlockFactors],
        hyper_in: torch.Tensor,
        update: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """`dense` from the image's upscaling basis (4096, 256) and each
        block's factors, without the final tokens. `update` (h (r, 4096),
        weight (r, 256), shift (1, 256)) changes the basis by `h^T weight +
        shift` (a refinement's mask input: sam_mask_prompt.py)."""
        coefficients, rows = [], []
        scale = torch.ones_like(factors[-1][3]).reshape(1, -1)
        for index in reversed(range(self.blocks)):
            weights, values, mean, inv_std = factors[index]
            if index + 1 < self.blocks:
                coefficients.append(scale)  # the block's shift, scaled by the later blocks
                rows.append(getattr(self, f"shift{index}"))
            scale = scale * inv_std.reshape(1, -1)
            chain = getattr(self, f"chain{index}")
            coefficients += [weights * scale, -(mean.reshape(1, -1) * scale)]
            rows += [values @ chain, getattr(self, f"colsum{index}")]
        coefficients.append(torch.ones_like(scale))
        rows.append(self.const)
        if update is not None:
            h, weight, shift = update
            coefficients += [h * scale, scale]
            rows += [weight, shift]
        coefficient, row = torch.cat(coefficients), torch.cat(rows)  # (R, 4096), (R, 256)
        scaled = basis * scale.reshape(-1, 1)
        bands = scaled.chunk(UPSCALE_BANDS, dim=0)
        parts = zip(bands, coefficient.chunk(UPSCALE_BANDS, dim=1), strict=True)
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
