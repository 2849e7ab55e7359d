"""SAM's prompt encoder and mask decoder, rewritten for fast export to ONNX.

`ImageGraph` computes the image state once per image; `PromptGraph` (all
four masks), `ChoiceGraph` (the mask a click keeps) and `RefineGraph` (with
a mask input) compute the rest per prompt, plain or with the image's later
projections folded into low-rank products (`fold=True`). What each graph
computes and why it equals segment_anything's MaskDecoder.predict_masks:
README.md beside this file.

Frames: tokens are the 64x64 embedding grid in row-major order (index = y *
64 + x); point coordinates are in the 1024 model frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from segment_anything.modeling.transformer import Attention
from torch import nn

from worker.engines.sam.decoder.low_rank import (
    TOKENS,
    BlockFactors,
    ProjectedTokens,
    TokenUpdate,
    image_projections,
)
from worker.engines.sam.decoder.mask_prompt import MaskPrompt
from worker.engines.sam.decoder.state import (
    BlockReads,
    FinalReads,
    FirstBlock,
    ImageState,
    projected_reads,
    state_names,
)
from worker.engines.sam.decoder.upscaling import UPSCALE_BANDS, Upscaling, basis_weight

# A later block's (or the final attention's) reads: the projections, and the
# image's bases of them.
Reads = BlockReads[ProjectedTokens] | FinalReads[ProjectedTokens]
Bases = BlockReads[torch.Tensor] | FinalReads[torch.Tensor]


def _heads(x: torch.Tensor, attention: Attention) -> torch.Tensor:
    """(n, c) -> (heads, n, c / heads). Shapes are spelled with -1 for the
    prompt's token count and constants otherwise, so that the exported graph
    computes no shapes at run time."""
    heads = attention.num_heads
    return x.reshape(-1, heads, attention.internal_dim // heads).transpose(0, 1)


def _attend(
    attention: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """segment_anything's Attention on already projected (n, internal_dim) q, k, v."""
    qh, kh, vh = _heads(q, attention), _heads(k, attention), _heads(v, attention)
    scale = 1.0 / math.sqrt(attention.internal_dim // attention.num_heads)
    weights = torch.softmax((qh @ kh.transpose(1, 2)) * scale, dim=-1)
    out = (weights @ vh).transpose(0, 1).reshape(-1, attention.internal_dim)
    return attention.out_proj(out)


def _attend_image(
    attention: Attention, q: torch.Tensor, keys_t: torch.Tensor, values_t: torch.Tensor
) -> torch.Tensor:
    """`_attend` of a few tokens' projected queries (T, internal_dim) to the
    image's projected keys and values, kept transposed (internal_dim, 4096)
    so that each head's rows are contiguous."""
    heads = attention.num_heads
    d = attention.internal_dim // heads
    qh = _heads(q, attention) * (1.0 / math.sqrt(d))
    weights = torch.softmax(qh @ keys_t.reshape(heads, d, TOKENS), dim=-1)
    out = weights @ values_t.reshape(heads, d, TOKENS).transpose(1, 2)
    return attention.out_proj(out.transpose(0, 1).reshape(-1, attention.internal_dim))


def _attention(
    attention: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    return _attend(attention, attention.q_proj(q), attention.k_proj(k), attention.v_proj(v))


def _softmax_over_tokens(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over axis 1 of (heads, T, 4096) scores, spelled out: ONNX
    Runtime's Softmax on an axis other than the last transposes twice."""
    shifted = torch.exp(scores - scores.amax(dim=1, keepdim=True))
    return shifted / shifted.sum(dim=1, keepdim=True)


def _token_keys(attention: Attention, token_keys: torch.Tensor) -> torch.Tensor:
    """(heads, T, d): the keys of an image-to-token attention, scaled by 1/sqrt(d)."""
    d = attention.internal_dim // attention.num_heads
    return _heads(attention.k_proj(token_keys), attention) * (1.0 / math.sqrt(d))


def _image_attends_tokens(
    attention: Attention, scores: torch.Tensor, token_values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention of the 4096 image tokens to a few tokens, as factors
    (weights (heads*T, 4096), values (heads*T, 256)): the output is
    `weights^T values`, in a token-major layout (the softmax over T and every
    product run along the 4096 tokens). `scores` (heads, T, 4096) are the
    image queries against `_token_keys`.

    The output projection is folded into the values (`sum_h weights_h (v_h
    Wo_h)`), with its bias spread over the rows (each head's weights sum to 1).
    """
    heads = attention.num_heads
    v = _heads(attention.v_proj(token_values), attention)
    d, width = attention.internal_dim // heads, attention.out_proj.out_features
    weights = _softmax_over_tokens(scores).reshape(-1, TOKENS)
    w_o = attention.out_proj.weight.transpose(0, 1).reshape(heads, d, width)
    values = (v @ w_o).reshape(-1, width) + attention.out_proj.bias / heads
    return weights, values


def _low_rank_attention(
    attention: Attention,
    q: torch.Tensor,
    reads: Reads,
    bases: Bases,
    factors: list[BlockFactors],
    update: TokenUpdate | None,
) -> torch.Tensor:
    """segment_anything's Attention of a few tokens `q` (T, 256) to the image
    tokens after some blocks, from their keys' and values' bases and the
    click's low-rank parts (low_rank.py)."""
    heads = attention.num_heads
    d = attention.internal_dim // heads
    qh = _heads(attention.q_proj(q), attention) * (1.0 / math.sqrt(d))
    weights = torch.softmax(reads.keys.scores(qh, bases.keys, factors, update), dim=-1)
    out = reads.values.mix(weights, bases.values, factors, update)
    return attention.out_proj(out.transpose(0, 1).reshape(-1, attention.internal_dim))


class _NormWithStats(torch.autograd.Function):
    """LayerNorm over the last axis that also gives each row's mean and
    1/std, exported as one LayerNormalization with its optional outputs."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = x.mean(dim=-1, keepdim=True)
        inv_std = torch.rsqrt(x.var(dim=-1, unbiased=False, keepdim=True) + eps)
        return (x - mean) * inv_std * weight + bias, mean, inv_std

    @staticmethod
    def symbolic(g: Any, x: Any, weight: Any, bias: Any, eps: float) -> Any:
        return g.op("LayerNormalization", x, weight, bias, axis_i=-1, epsilon_f=eps, outputs=3)


def _norm_with_stats(
    norm: nn.LayerNorm, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(norm(x), mean, 1/std), the statistics (rows, 1)."""
    normed, mean, inv_std = _NormWithStats.apply(x, norm.weight, norm.bias, norm.eps)
    return normed, mean, inv_std


class ImageGraph(nn.Module):
    """Image-side tensors of the decoder, without a mask input.

    Input: image_embeddings 1x256x64x64 (float16). Outputs (STATE_NAMES),
    one row per token unless said: image_tokens 4096x256 (embedding + SAM's
    no-mask dense prompt); t2i_keys, t2i_values and i2t_queries, the first
    block's projections, each 128x4096 (transposed); the tokens' part of the
    upscaling's first product (upscaling.py), 4096x256 in UPSCALE_BANDS
    bands of rows; then the bases of the later projections
    (low_rank.image_projections), each 128x4096 (transposed).
    """

    image_pe: torch.Tensor
    basis_weight: torch.Tensor

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.block = mask_decoder.transformer.layers[0]
        self.register_buffer("image_pe", _dense_pe(prompt_encoder), persistent=False)
        self.register_buffer("basis_weight", basis_weight(mask_decoder), persistent=False)
        self.projections = image_projections(mask_decoder, self.image_pe)
        self.reads = projected_reads(self.projections)

    def forward(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        no_mask = self.prompt_encoder.no_mask_embed.weight  # (1, 256)
        tokens_t = image_embeddings.float().reshape(256, TOKENS) + no_mask.transpose(0, 1)
        tokens = tokens_t.transpose(0, 1)
        with_pe = tokens + self.image_pe
        t2i, i2t = self.block.cross_attn_token_to_image, self.block.cross_attn_image_to_token
        queries = i2t.q_proj(with_pe).transpose(0, 1).contiguous()
        with_pe_t = tokens_t + self.image_pe.transpose(0, 1)
        keys_t = t2i.k_proj.weight @ with_pe_t + t2i.k_proj.bias[:, None]
        values_t = t2i.v_proj.weight @ tokens_t + t2i.v_proj.bias[:, None]
        bands = (tokens @ self.basis_weight).chunk(UPSCALE_BANDS, dim=0)
        later = self.reads.map(lambda read: read.basis(tokens_t))
        first = FirstBlock(tokens, keys_t, values_t, queries)
        return ImageState(first=first, up_basis=bands, later=later).flat()


class PromptGraph(nn.Module):
    """The prompt-dependent rest of the decoder.

    Inputs: ImageGraph's outputs, point_coords 1xNx2 (x, y) in the 1024
    model frame and point_labels 1xN (1 positive, 0 negative, 2/3 box
    corners, -1 padding). Outputs: low_res_masks 1x65536x4 logits in block
    order (upscaling.mask_frames makes them 4x256x256) and
    iou_predictions 1x4 (index 0 is the single-mask output, 1..3 the
    multimask outputs), as MaskDecoder.predict_masks returns them. With
    `fold=True` the blocks after the first and the upscaling's first product
    read the image tokens in low rank, from the image's bases
    (low_rank.py); the plain graph (for many points, where that rank is
    no longer low) projects the tokens.
    """

    image_pe: torch.Tensor

    def __init__(
        self,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        *,
        fold: bool = False,
        refine: bool = False,
    ) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.decoder = mask_decoder
        self.fold = fold
        self.mask = MaskPrompt(prompt_encoder, mask_decoder) if refine else None
        self.img_size = prompt_encoder.input_image_size[0]
        self.register_buffer("image_pe", _dense_pe(prompt_encoder), persistent=False)
        self.upscaling = Upscaling(mask_decoder)
        self.projections = image_projections(mask_decoder, self.image_pe) if fold else None
        self.reads = None if self.projections is None else projected_reads(self.projections)

    def sparse_embeddings(
        self, point_coords: torch.Tensor, point_labels: torch.Tensor
    ) -> torch.Tensor:
        """(N, 256): PromptEncoder._embed_points/_embed_boxes without control flow."""
        pe = self.prompt_encoder
        coords = (point_coords[0] + 0.5) / self.img_size
        sparse = pe.pe_layer._pe_encoding(coords)
        labels = point_labels[0].unsqueeze(-1)
        sparse = sparse * (labels != -1) + pe.not_a_point_embed.weight * (labels == -1)
        for i in range(pe.num_point_embeddings):
            sparse = sparse + pe.point_embeddings[i].weight * (labels == i)
        return sparse

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs by position (onnx.PROMPT_INPUTS names them for export):
        the image state, point_coords, point_labels."""
        state, (point_coords, point_labels) = _prompt_inputs(inputs)
        queries, masks_of = self._decode(state, point_coords, point_labels)
        iou = self.decoder.iou_prediction_head(queries[0:1])
        return masks_of(self._hyper_in(queries))[None], iou

    def _decode(
        self,
        state: ImageState,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """The output tokens after the two-way transformer, and the masks of
        given rows of hyper_in; `mask_input` (a refinement graph's) is folded in."""
        decoder = self.decoder
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens, self.sparse_embeddings(point_coords, point_labels)])
        h = self.mask.h(mask_input) if self.mask is not None and mask_input is not None else None
        queries, keys, factors = self._two_way(tokens, state, h)
        if self.fold:
            update = self.mask.token_update(h) if self.mask is not None and h is not None else None
            return queries, lambda hyper_in: self.upscaling.low_rank(
                list(state.up_basis), factors, hyper_in, update
            )
        return queries, lambda hyper_in: self.upscaling.dense(keys, hyper_in)

    def _hyper_in(self, queries: torch.Tensor) -> torch.Tensor:
        """(4, 32): each mask token through its hypernetwork MLP."""
        mlps = self.decoder.output_hypernetworks_mlps
        return torch.stack([mlp(queries[1 + i]) for i, mlp in enumerate(mlps)])

    def _two_way(
        self,
        point_embedding: torch.Tensor,
        state: ImageState,
        h: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[BlockFactors]]:
        """TwoWayTransformer.forward on the image state: (queries, the final
        image tokens, each block's image-side factors). The folded graph reads
        the image tokens after the first block in low rank, so of the final
        tokens only their LayerNorm statistics are used. `h` is a mask
        input's features (MaskPrompt), folded into the first block."""
        mask = self.mask if h is not None else None
        update = mask.token_update(h) if mask is not None and h is not None else None
        transformer = self.decoder.transformer
        first = state.first
        keys = first.image_tokens
        key_pe, query_pe = self.image_pe, point_embedding
        queries = point_embedding
        factors: list[BlockFactors] = []
        for index, block in enumerate(transformer.layers):
            if block.skip_first_layer_pe:
                queries = _attention(block.self_attn, queries, queries, queries)
            else:
                q = queries + query_pe
                queries = queries + _attention(block.self_attn, q, q, queries)
            queries = block.norm1(queries)
            t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
            later = self._later(state, index)
            if index == 0:
                q = t2i.q_proj(queries + query_pe)
                if mask is not None and h is not None:
                    attn_out = mask.tokens_attend_image(t2i, q, first.t2i_keys, first.t2i_values, h)
                else:
                    attn_out = _attend_image(t2i, q, first.t2i_keys, first.t2i_values)
            elif later is not None:
                reads, bases = later
                attn_out = _low_rank_attention(
                    t2i, queries + query_pe, reads, bases, factors, update
                )
            else:
                attn_out = _attention(t2i, queries + query_pe, keys + key_pe, keys)
            queries = block.norm2(queries + attn_out)
            queries = block.norm3(queries + block.mlp(queries))
            k = _token_keys(i2t, queries + query_pe)
            heads, d = i2t.num_heads, i2t.internal_dim // i2t.num_heads
            if index == 0:
                scores = k @ first.i2t_queries.reshape(heads, d, TOKENS)
                if mask is not None and h is not None:
                    w, shift = mask.query_update(i2t)
                    scores = scores + (k @ w) @ h + k @ shift
            elif later is not None:
                reads, bases = later
                scores = reads.queries.scores(k, bases.queries, factors, update)
            else:
                image_q = i2t.q_proj(keys + key_pe).transpose(0, 1)
                scores = k @ image_q.reshape(heads, d, TOKENS)
            weights, values = _image_attends_tokens(i2t, scores, queries)
            rows, row_values = weights, values
            if mask is not None and h is not None and index == 0:
                # The tokens' own update joins the residual product.
                rows, row_values = mask.residual(weights, values, h, i2t.num_heads)
            keys, mean, inv_std = _norm_with_stats(
                block.norm4, torch.addmm(keys, rows.transpose(0, 1), row_values)
            )
            factors.append((weights, values, mean, inv_std))
        final = transformer.final_attn_token_to_image
        q = queries + query_pe
        if self.reads is not None:
            attn_out = _low_rank_attention(
                final, q, self.reads.final, state.later.final, factors, update
            )
        else:
            attn_out = _attention(final, q, keys + key_pe, keys)
        return transformer.norm_final_attn(queries + attn_out), keys, factors

    def _later(
        self, state: ImageState, index: int
    ) -> tuple[BlockReads[ProjectedTokens], BlockReads[torch.Tensor]] | None:
        """Block `index`'s three low-rank projections (t2i keys, values, i2t
        queries) and the image's bases of them in the folded graph, else None."""
        if self.reads is None or index == 0:
            return None
        return self.reads.block(index), state.later.block(index)


class ChoiceGraph(PromptGraph):
    """PromptGraph that returns only the mask a click keeps.

    One more input, multimask (1,): 1 picks the multimask output (1..3) with
    the best predicted IoU, as SamPredictor's callers do for a lone first
    click; 0 the single-mask output (0). Outputs: low_res_masks 1x65536x1,
    iou_predictions 1x4 and mask_index (1,) int64. The upscaling is shared by
    the four masks, so this saves only the other three's last product and
    reordering (about 1.5 ms of 21 on 2 cores).
    """

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """PromptGraph's inputs, then multimask (onnx.CHOICE_INPUTS)."""
        state, (point_coords, point_labels, multimask) = _prompt_inputs(inputs)
        return self._choose(state, point_coords, point_labels, multimask)

    def _choose(
        self,
        state: ImageState,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        multimask: torch.Tensor,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        queries, masks_of = self._decode(state, point_coords, point_labels, mask_input)
        iou = self.decoder.iou_prediction_head(queries[0:1])
        best = torch.argmax(iou[0, 1:]).reshape(1) + 1
        index = torch.where(multimask > 0.5, best, torch.zeros_like(best))
        hyper_in = self._hyper_in(queries).index_select(0, index)
        return masks_of(hyper_in)[None], iou, index


class RefineGraph(ChoiceGraph):
    """The folded ChoiceGraph for a refinement: one more input, mask_input
    1x1x256x256 (the previous logits), folded into the click's products
    (mask_prompt.MaskPrompt) so that the kept no-mask state is read as it
    is, with no pass of its own over it."""

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__(prompt_encoder, mask_decoder, fold=True, refine=True)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """ChoiceGraph's inputs, then mask_input (onnx.REFINE_INPUTS)."""
        state, (point_coords, point_labels, multimask, mask_input) = _prompt_inputs(inputs)
        return self._choose(state, point_coords, point_labels, multimask, mask_input)


def _prompt_inputs(
    inputs: tuple[torch.Tensor, ...],
) -> tuple[ImageState, tuple[torch.Tensor, ...]]:
    """A prompt graph's inputs: the image state, named, and the rest
    (point_coords, point_labels, then multimask and mask_input where taken)."""
    size = len(state_names())
    return ImageState.from_flat(inputs[:size]), inputs[size:]


def _dense_pe(prompt_encoder: PromptEncoder) -> torch.Tensor:
    """The 64x64 grid's positional encoding, one row per token (4096x256)."""
    with torch.no_grad():
        return prompt_encoder.get_dense_pe()[0].reshape(256, TOKENS).transpose(0, 1).contiguous()
