"""A refinement's mask input, as rank-16 updates of a click's image state.

SAM's dense prompt for a mask ends in a 1x1 convolution from 16 channels
(`h`, 16 x 4096), so it changes the image tokens, and every tensor of the
image state, by a rank-16 update. `MaskGraph` applies it to the kept state
(for the plain graph); `MaskPrompt` folds it into the folded graphs' own
products, so that a refinement reads the kept no-mask state as it is.
The derivation: README.md beside this file, section 7.
"""

from __future__ import annotations

import math

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from segment_anything.modeling.transformer import Attention
from torch import nn

from worker.engines.sam.decoder.low_rank import TOKENS, TokenUpdate
from worker.engines.sam.decoder.state import FirstBlock


def _per_head(x: torch.Tensor, attention: Attention) -> torch.Tensor:
    """(n, heads*d) -> (heads, n, d)"""
    heads = attention.num_heads
    return x.reshape(-1, heads, attention.internal_dim // heads).transpose(0, 1)


class MaskPrompt(nn.Module):
    """The rank-16 update of each image-state tensor: `{name}_weight` (16, N)
    and `{name}_shift` (N,), and the features `h` of a mask input."""

    tokens_weight: torch.Tensor
    tokens_shift: torch.Tensor
    keys_weight: torch.Tensor
    values_weight: torch.Tensor
    values_shift: torch.Tensor
    queries_weight: torch.Tensor
    queries_shift: torch.Tensor

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        down = prompt_encoder.mask_downscaling
        self.features = down[:-1]  # everything before the last 1x1 convolution
        last = down[-1]
        block = mask_decoder.transformer.layers[0]
        t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
        with torch.no_grad():
            weight = last.weight.reshape(last.out_channels, -1).transpose(0, 1)  # (16, 256)
            shift = last.bias - prompt_encoder.no_mask_embed.weight[0]  # (256,)
            matrices = {
                "tokens": torch.eye(shift.shape[0]),
                "keys": t2i.k_proj.weight.transpose(0, 1),
                "values": t2i.v_proj.weight.transpose(0, 1),
                "queries": i2t.q_proj.weight.transpose(0, 1),
            }
            for name, matrix in matrices.items():
                self.register_buffer(f"{name}_weight", weight @ matrix)
                self.register_buffer(f"{name}_shift", shift @ matrix)

    def h(self, mask_input: torch.Tensor) -> torch.Tensor:
        """(16, 4096): the mask input's features before the last convolution."""
        return self.features(mask_input).reshape(-1, TOKENS)

    def tokens_attend_image(
        self,
        attention: Attention,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        h: torch.Tensor,
    ) -> torch.Tensor:
        """The first block's token-to-image attention on the kept (no-mask)
        projections `keys` and `values` (transposed, 128 x 4096), with the
        mask's update folded in; `q` is projected."""
        heads = attention.num_heads
        d = attention.internal_dim // heads
        qh = _per_head(q, attention) * (1.0 / math.sqrt(d))  # (h, T, d)
        w_k = self.keys_weight.reshape(-1, heads, d).transpose(0, 1)  # (h, 16, d)
        w_v = self.values_weight.reshape(-1, heads, d).transpose(0, 1)
        scores = qh @ keys.reshape(heads, d, TOKENS) + (qh @ w_k.transpose(1, 2)) @ h
        weights = torch.softmax(scores, dim=-1)
        out = weights @ values.reshape(heads, d, TOKENS).transpose(1, 2)
        out = out + (weights @ h.transpose(0, 1)) @ w_v
        out = out + self.values_shift.reshape(heads, 1, d)
        return attention.out_proj(out.transpose(0, 1).reshape(-1, attention.internal_dim))

    def query_update(self, attention: Attention) -> tuple[torch.Tensor, torch.Tensor]:
        """What the image-to-token scores `k @ queries^T` gain: `(k @ w) @ h + k @ s`
        for (w (heads, d, 16), s (heads, d, 1))."""
        heads = attention.num_heads
        d = attention.internal_dim // heads
        w = self.queries_weight.transpose(0, 1).reshape(heads, d, -1)
        return w, self.queries_shift.reshape(heads, d, 1)

    def residual(
        self, weights: torch.Tensor, values: torch.Tensor, h: torch.Tensor, heads: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first block's residual product `rows^T values` with the tokens'
        update as 16 more rows (its shift spread over the value rows, as each
        head's weights sum to 1)."""
        rows = torch.cat([weights, h])
        return rows, torch.cat([values + self.tokens_shift / heads, self.tokens_weight])

    def token_update(self, h: torch.Tensor) -> TokenUpdate:
        """The image tokens' update: `h^T weight + shift`, as (h, weight, shift (1, 256));
        low_rank.py carries it into the bases of the later products."""
        return h, self.tokens_weight, self.tokens_shift[None]


class MaskGraph(nn.Module):
    """The plain graph's image state for a mask input, from the no-mask one.
    Inputs: ImageGraph's first four outputs (the plain graph reads no
    other) and mask_input 1x1x256x256 (logits). Outputs: the same tensors
    with the mask's dense prompt."""

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.prompt = MaskPrompt(prompt_encoder, mask_decoder)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The image state's FirstBlock tensors (onnx.PLAIN_STATE), then mask_input."""
        *plain, mask_input = inputs
        first = FirstBlock(*plain)
        prompt = self.prompt
        h = prompt.h(mask_input)  # (16, 4096)
        tokens = first.image_tokens + h.transpose(0, 1) @ prompt.tokens_weight + prompt.tokens_shift
        out = [tokens]
        # The projections are kept transposed (128 x 4096).
        bases = (("keys", first.t2i_keys), ("values", first.t2i_values))
        for name, base in (*bases, ("queries", first.i2t_queries)):
            weight, shift = getattr(prompt, f"{name}_weight"), getattr(prompt, f"{name}_shift")
            out.append(base + weight.transpose(0, 1) @ h + shift[:, None])
        return tuple(out)
