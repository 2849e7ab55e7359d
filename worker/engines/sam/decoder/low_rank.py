"""Products of the image tokens after SAM's two-way blocks, in low rank.

The image tokens after d blocks times a fixed matrix W (plus a bias) are
`s * (basis + coefficients^T rows)`: `basis` = tokens_0 G W is the same for
every prompt on an image (kept in the image state), `s` (a scale per token),
`coefficients` (R, 4096) and `rows` (R, columns) come from the click's
blocks (their attention weights and values and LayerNorm statistics). The
derivation, the order of the rows and why it is exact: README.md beside
this file, section 5.
"""

from __future__ import annotations

import torch
from segment_anything.modeling import MaskDecoder
from torch import nn

TOKENS = 64 * 64  # SAM's image tokens: the 64x64 embedding grid, row-major

# One two-way block's contribution: the attention weights (heads*T, 4096),
# the folded values (heads*T, 256), and the LayerNorm's mean and 1/std (4096, 1).
BlockFactors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
# A mask input's change to tokens_0: `h^T weight + shift`, as (h (16, 4096),
# weight (16, 256), shift (1, 256)).
TokenUpdate = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
# (s (1, 4096), coefficients (R, 4096), rows (R, columns)): a TokenProduct's
# value for one click, apart from the basis.
LowRank = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def chained_weights(
    mask_decoder: MaskDecoder, depth: int, weight: torch.Tensor
) -> list[torch.Tensor]:
    """[G_1 W, G_2 W, .., G_d W, W]: `weight` after the per-channel LayerNorm
    scales of blocks l .. d (each block's norm4), for l = 1 .. d."""
    chained = [weight]
    for block in reversed(mask_decoder.transformer.layers[:depth]):
        chained.insert(0, block.norm4.weight[:, None] * chained[0])
    return chained


class TokenProduct(nn.Module):
    """The image tokens after `depth` two-way blocks times `weight` (256,
    columns), plus `bias`, as `s * (basis + coefficients^T rows)` (`low_rank`).
    tokens_0 times `basis_weight` is the basis."""

    basis_weight: torch.Tensor
    const: torch.Tensor

    def __init__(
        self,
        mask_decoder: MaskDecoder,
        depth: int,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        blocks = mask_decoder.transformer.layers[:depth]
        with torch.no_grad():
            chained = chained_weights(mask_decoder, depth, weight.detach())
            self.register_buffer("basis_weight", chained[0].clone(), persistent=False)
            for index in range(depth):
                self.register_buffer(f"chain{index}", chained[index].clone(), persistent=False)
                colsum = chained[index].sum(dim=0, keepdim=True)
                self.register_buffer(f"colsum{index}", colsum, persistent=False)
                # The block's shift goes through the next blocks' scales only.
                shift = blocks[index].norm4.bias[None] @ chained[index + 1]
                if index + 1 < depth:
                    self.register_buffer(f"shift{index}", shift, persistent=False)
                else:
                    const = shift if bias is None else shift + bias.detach()
                    self.register_buffer("const", const, persistent=False)
        self.depth = depth

    def rows(self, blocks: list[BlockFactors], update: TokenUpdate | None = None) -> torch.Tensor:
        """(R, columns): the rows of a click, in `coefficients`' order, from its
        blocks' factors (the first `depth` are read) and a mask input's update."""
        rows = []
        for index in reversed(range(self.depth)):
            _, values, _, _ = blocks[index]
            if index + 1 < self.depth:
                rows.append(getattr(self, f"shift{index}"))
            rows += [values @ getattr(self, f"chain{index}"), getattr(self, f"colsum{index}")]
        rows.append(self.const)
        if update is not None:
            _, weight, shift = update
            rows += [weight @ self.basis_weight, shift @ self.basis_weight]
        return torch.cat(rows)


def coefficients(
    blocks: list[BlockFactors], depth: int, update: TokenUpdate | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(s (1, 4096), coefficients (R, 4096)) of the tokens after `depth`
    blocks, the same for every TokenProduct of that depth: its product is
    `s * (basis + coefficients^T rows)`. Relative to s, the first block's
    terms need no scaling and a later block's only the earlier blocks' std."""
    inv_stds = [inv_std.reshape(1, -1) for _, _, _, inv_std in blocks[:depth]]
    stds = [torch.reciprocal(inv_std) for inv_std in inv_stds]
    relative: list[torch.Tensor | None] = [None]  # the std of the blocks before each
    for std in stds:
        earlier = relative[-1]
        relative.append(std if earlier is None else earlier * std)
    found: list[torch.Tensor] = []
    for index in reversed(range(depth)):
        weights, _, mean, _ = blocks[index]
        if index + 1 < depth:
            found.append(_present(relative[index + 1]))  # the block's shift
        earlier = relative[index]
        mean_row = -mean.reshape(1, -1)
        found += [weights, mean_row] if earlier is None else [weights * earlier, mean_row * earlier]
    found.append(_present(relative[depth]))  # the constant row
    if update is not None:
        h, _, _ = update
        found += [h, torch.ones(1, TOKENS)]
    scale = inv_stds[0]
    for inv_std in inv_stds[1:]:
        scale = scale * inv_std
    return scale, torch.cat(found)


def _present(x: torch.Tensor | None) -> torch.Tensor:
    assert x is not None
    return x


def low_rank(
    product: TokenProduct, blocks: list[BlockFactors], update: TokenUpdate | None = None
) -> LowRank:
    """`product` for one click: (s, coefficients, rows)."""
    scale, found = coefficients(blocks, product.depth, update)
    return scale, found, product.rows(blocks, update)


class ProjectedTokens(nn.Module):
    """A linear layer of a two-way attention applied to the image tokens
    after `depth` blocks, with the positional encoding added first when
    `image_pe` (4096, 256) is given: `basis` per image, `low_rank` per click,
    and the encoding's projection as a constant (out, 4096)."""

    constant: torch.Tensor | None

    def __init__(
        self,
        mask_decoder: MaskDecoder,
        depth: int,
        linear: nn.Linear,
        image_pe: torch.Tensor | None,
        heads: int,
    ) -> None:
        super().__init__()
        # Python ints, so that the graph computes no shapes at run time.
        self.heads, self.d = heads, linear.out_features // heads
        self.product = TokenProduct(mask_decoder, depth, linear.weight.transpose(0, 1), linear.bias)
        with torch.no_grad():
            constant = None if image_pe is None else linear.weight @ image_pe.transpose(0, 1)
        self.register_buffer("constant", constant, persistent=False)

    def basis(self, tokens_t: torch.Tensor) -> torch.Tensor:
        """(out, 4096) from tokens_0 transposed (256, 4096)."""
        return self.product.basis_weight.transpose(0, 1) @ tokens_t

    def scores(
        self,
        q: torch.Tensor,
        basis: torch.Tensor,
        blocks: list[BlockFactors],
        update: TokenUpdate | None,
    ) -> torch.Tensor:
        """(heads, T, 4096): `q` (heads, T, d) times each head's part of these
        projections of the image tokens, from the image's basis (out, 4096)
        and the click's blocks' factors."""
        scale, coefficients, rows = low_rank(self.product, blocks, update)
        heads, d = self.heads, self.d
        per_head = rows.reshape(-1, heads, d).permute(1, 2, 0)  # (heads, d, R)
        scores = (q @ basis.reshape(heads, d, TOKENS) + (q @ per_head) @ coefficients) * scale
        if self.constant is not None:
            scores = scores + q @ self.constant.reshape(heads, d, TOKENS)
        return scores

    def mix(
        self,
        weights: torch.Tensor,
        basis: torch.Tensor,
        blocks: list[BlockFactors],
        update: TokenUpdate | None,
    ) -> torch.Tensor:
        """(heads, T, d): attention weights (heads, T, 4096) times each head's
        part of these projections (given as in `scores`)."""
        scale, coefficients, rows = low_rank(self.product, blocks, update)
        heads, d = self.heads, self.d
        scaled = weights * scale
        out = scaled @ basis.reshape(heads, d, TOKENS).transpose(1, 2)
        mixed = scaled @ coefficients.transpose(0, 1)  # (heads, T, R)
        out = out + mixed @ rows.reshape(-1, heads, d).transpose(0, 1)
        if self.constant is not None:
            out = out + weights @ self.constant.reshape(heads, d, TOKENS).transpose(1, 2)
        return out


def image_projections(mask_decoder: MaskDecoder, image_pe: torch.Tensor) -> nn.ModuleList:
    """The projections of the image tokens that the two-way transformer
    reads after its first block, in order: for each later block, its
    token-to-image keys and values and its image-to-token queries; then the
    final attention's keys and values (5 for SAM's two blocks). The image
    state keeps their bases (`ProjectedTokens.basis`), in the same order."""
    transformer = mask_decoder.transformer
    projections = []
    for depth, block in enumerate(transformer.layers[1:], start=1):
        t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
        projections += [
            ProjectedTokens(mask_decoder, depth, t2i.k_proj, image_pe, t2i.num_heads),
            ProjectedTokens(mask_decoder, depth, t2i.v_proj, None, t2i.num_heads),
            ProjectedTokens(mask_decoder, depth, i2t.q_proj, image_pe, i2t.num_heads),
        ]
    final, depth = transformer.final_attn_token_to_image, len(transformer.layers)
    projections += [
        ProjectedTokens(mask_decoder, depth, final.k_proj, image_pe, final.num_heads),
        ProjectedTokens(mask_decoder, depth, final.v_proj, None, final.num_heads),
    ]
    return nn.ModuleList(projections)


def projection(projections: nn.ModuleList, index: int) -> ProjectedTokens:
    """`image_projections(...)[index]`, typed."""
    found = projections[index]
    assert isinstance(found, ProjectedTokens)
    return found
