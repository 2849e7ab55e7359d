"""The low-rank products of the image tokens (worker/engines/sam/decoder/low_rank.py)
against the tokens themselves, computed block by block as the two-way
transformer does: a residual of rank heads x T, then the block's LayerNorm.

Correctness only: the exported graphs are checked against segment_anything
in test_decode_agreement.py beside this file; this pins the algebra, for a
decoder whose norms are far from the identity (as a trained one's are) and for a mask input's
update of the first tokens.
"""

from __future__ import annotations

import pytest
import torch
from segment_anything.modeling import MaskDecoder

from tests.tiny_sam import build_tiny_sam
from worker.engines.sam.decoder.low_rank import (
    TOKENS,
    BlockFactors,
    TokenProduct,
    TokenUpdate,
    image_projections,
    low_rank,
    projection,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEADS, T = 8, 7


@pytest.fixture(scope="module")
def decoder() -> MaskDecoder:
    decoder = build_tiny_sam(seed=11).mask_decoder
    rng = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for block in decoder.transformer.layers:
            block.norm4.weight.mul_(torch.rand(256, generator=rng) * 2.7 + 0.3)
            block.norm4.bias.add_(torch.randn(256, generator=rng))
    return decoder


def tokens_through_blocks(
    decoder: MaskDecoder, tokens: torch.Tensor, seed: int
) -> tuple[list[torch.Tensor], list[BlockFactors]]:
    """The tokens after each block for random attention outputs, and the
    blocks' factors as the graphs record them."""
    rng = torch.Generator().manual_seed(seed)
    after, factors = [], []
    for block in decoder.transformer.layers:
        weights = torch.rand(HEADS * T, TOKENS, generator=rng)
        values = torch.randn(HEADS * T, 256, generator=rng)
        x = tokens + weights.transpose(0, 1) @ values
        mean = x.mean(dim=1, keepdim=True)
        inv_std = torch.rsqrt(x.var(dim=1, unbiased=False, keepdim=True) + block.norm4.eps)
        tokens = block.norm4(x)
        after.append(tokens)
        factors.append((weights, values, mean, inv_std))
    return after, factors


def random_update(seed: int) -> tuple[TokenUpdate, torch.Tensor]:
    """A mask input's update of the first tokens, and its value (4096, 256)."""
    rng = torch.Generator().manual_seed(seed)
    h = torch.randn(16, TOKENS, generator=rng)
    weight, shift = torch.randn(16, 256, generator=rng) * 0.1, torch.randn(1, 256, generator=rng)
    return (h, weight, shift), h.transpose(0, 1) @ weight + shift


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("with_update", [False, True])
@torch.no_grad()
def test_a_token_product_equals_the_tokens_times_its_weight(
    decoder: MaskDecoder, depth: int, with_update: bool
) -> None:
    tokens = torch.randn(TOKENS, 256, generator=torch.Generator().manual_seed(depth))
    update, change = random_update(depth) if with_update else (None, torch.zeros(1))
    after, factors = tokens_through_blocks(decoder, tokens + change, seed=depth)
    weight, bias = torch.randn(256, 96), torch.randn(96)
    product = TokenProduct(decoder, depth, weight, bias)
    scale, coefficients, rows = low_rank(product, factors, update)
    basis = tokens @ product.basis_weight  # the image's, without the mask
    got = (basis + coefficients.transpose(0, 1) @ rows) * scale.reshape(-1, 1)
    want = after[depth - 1] @ weight + bias
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
    # Each block adds heads x T + 1 rows, each later shift and the constant one.
    assert rows.shape[0] == depth * (HEADS * T + 1) + depth + (17 if with_update else 0)


@torch.no_grad()
def test_attention_scores_and_mixes_equal_the_dense_projections(decoder: MaskDecoder) -> None:
    """For each projection the transformer reads after its first block."""
    pe = torch.randn(TOKENS, 256, generator=torch.Generator().manual_seed(3))
    projections = image_projections(decoder, pe)
    tokens = torch.randn(TOKENS, 256, generator=torch.Generator().manual_seed(4))
    update, change = random_update(5)
    after, factors = tokens_through_blocks(decoder, tokens + change, seed=6)
    linears = [decoder.transformer.layers[1].cross_attn_token_to_image.k_proj,
               decoder.transformer.layers[1].cross_attn_token_to_image.v_proj,
               decoder.transformer.layers[1].cross_attn_image_to_token.q_proj,
               decoder.transformer.final_attn_token_to_image.k_proj,
               decoder.transformer.final_attn_token_to_image.v_proj]  # fmt: skip
    with_pe = [True, False, True, True, False]
    depths = [1, 1, 1, 2, 2]
    q = torch.randn(HEADS, T, 16, generator=torch.Generator().manual_seed(7))
    weights = torch.softmax(torch.randn(HEADS, T, TOKENS), dim=-1)
    assert len(projections) == len(linears)
    for index, linear in enumerate(linears):
        found = projection(projections, index)
        basis = found.basis(tokens.transpose(0, 1))
        image = after[depths[index] - 1] + (pe if with_pe[index] else 0)
        dense = linear(image).reshape(TOKENS, HEADS, 16).transpose(0, 1)  # (heads, 4096, d)
        got = found.scores(q, basis, factors, update)
        torch.testing.assert_close(got, q @ dense.transpose(1, 2), rtol=1e-4, atol=2e-3)
        mixed = found.mix(weights, basis, factors, update)
        torch.testing.assert_close(mixed, weights @ dense, rtol=1e-4, atol=1e-3)
