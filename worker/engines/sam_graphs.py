"""SAM's prompt encoder and mask decoder, rewritten for fast export to ONNX.

The same computation as segment_anything's MaskDecoder.predict_masks (and
SamPredictor's prompt handling), reorganised in two graphs:

- ImageGraph: the work that depends on the image but not on the prompt: the
  image tokens with the no-mask dense prompt added, and the three
  projections of the first two-way block that read only them (token-to-image
  keys and values, image-to-token queries). It is the same for every prompt
  on an image, so it is run once per image and kept (`ImageState`); it is
  about a quarter of the decoder's work. MaskGraph turns it into the same
  tensors for a refinement's mask input with a rank-16 update.
- PromptGraph: everything else, from those tensors and the points. With
  `fold=True` the attention between the few prompt tokens (T: 5 output
  tokens plus the points) and the 4096 image tokens never projects the image
  tokens: the projections are folded into the token side, which costs
  T x 8 x 4096 x 256 instead of 4096 x 256 x 128 per projection, less for
  T up to about 14 (exact up to float rounding).

The output upscaling runs channels-last: a 2x2 stride-2 transposed
convolution is a per-pixel matrix product (each input pixel makes its own
2x2 block), so both of them are plain MatMuls, LayerNorm2d is a
LayerNormalization over the last axis, and the pixels are put in 256x256
order only once, at the end, for the four masks. Frames: tokens are the 64x64
embedding grid in row-major order (index = y * 64 + x).
"""

from __future__ import annotations

import math

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from segment_anything.modeling.transformer import Attention
from torch import nn
from torch.nn import functional

GRID = 64
TOKENS = GRID * GRID
UPSCALE_BANDS = 16


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(n, c) -> (heads, n, c / heads)"""
    n, c = x.shape
    return x.reshape(n, num_heads, c // num_heads).transpose(0, 1)


def _attend(
    attention: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """segment_anything's Attention on already projected (n, internal_dim) q, k, v."""
    heads = attention.num_heads
    qh, kh, vh = _heads(q, heads), _heads(k, heads), _heads(v, heads)
    scale = 1.0 / math.sqrt(qh.shape[-1])
    weights = torch.softmax((qh @ kh.transpose(1, 2)) * scale, dim=-1)
    out = (weights @ vh).transpose(0, 1).reshape(q.shape[0], -1)
    return attention.out_proj(out)


def _attention(
    attention: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    return _attend(attention, attention.q_proj(q), attention.k_proj(k), attention.v_proj(v))


def _tokens_attend_image(
    attention: Attention, queries: torch.Tensor, keys_in: torch.Tensor, values_in: torch.Tensor
) -> torch.Tensor:
    """Attention of a few tokens to the 4096 image tokens, the image-side
    projections folded into the token side: `q . (x Wk + bk)` is
    `(q Wk^T) . x` plus a term the same for every key (softmax drops it), and
    a softmax-weighted mean of `x Wv + bv` is `(weights x) Wv + bv`. Costs
    heads x T x 4096 x 256 twice instead of 4096 x 256 x 128 twice."""
    heads = attention.num_heads
    q = _heads(attention.q_proj(queries), heads)  # (h, T, d)
    d = q.shape[-1]
    w_k = attention.k_proj.weight.reshape(heads, d, -1)  # (h, d, 256)
    w_v = attention.v_proj.weight.reshape(heads, d, -1)
    scores = (q @ w_k) @ keys_in.transpose(0, 1)  # (h, T, 4096)
    weights = torch.softmax(scores * (1.0 / math.sqrt(d)), dim=-1)
    mixed = weights @ values_in  # (h, T, 256)
    out = mixed @ w_v.transpose(1, 2) + attention.v_proj.bias.reshape(heads, 1, d)
    return attention.out_proj(out.transpose(0, 1).reshape(queries.shape[0], -1))


def _image_attends_tokens(
    attention: Attention,
    image_q: torch.Tensor | None,
    image_in: torch.Tensor,
    token_keys: torch.Tensor,
    token_values: torch.Tensor,
) -> torch.Tensor:
    """Attention of the 4096 image tokens to a few tokens, with the output
    projection folded into the values (`sum_h weights_h (v_h Wo_h)`) and,
    unless `image_q` (the projected queries) is given, the query projection
    folded into the keys (`(x Wq + bq) . k` = `x (Wq^T k) + bq . k`)."""
    heads = attention.num_heads
    k = _heads(attention.k_proj(token_keys), heads)  # (h, T, d)
    v = _heads(attention.v_proj(token_values), heads)
    d, count = k.shape[-1], k.shape[1]
    if image_q is None:
        w_q = attention.q_proj.weight.reshape(heads, d, -1)  # (h, d, 256)
        folded = (k @ w_q).reshape(heads * count, -1)  # (h T, 256)
        bias = (k @ attention.q_proj.bias.reshape(heads, d, 1)).reshape(1, heads * count)
        scores = image_in @ folded.transpose(0, 1) + bias  # (4096, h T)
    else:
        q = image_q.reshape(-1, heads, d).transpose(0, 1)  # (h, 4096, d)
        scores = (q @ k.transpose(1, 2)).transpose(0, 1).reshape(-1, heads * count)
    weights = torch.softmax(scores.reshape(-1, heads, count) * (1.0 / math.sqrt(d)), dim=-1)
    w_o = attention.out_proj.weight.transpose(0, 1).reshape(heads, d, -1)  # (h, d, 256)
    values_out = (v @ w_o).reshape(heads * count, -1)  # (h T, 256)
    return weights.reshape(-1, heads * count) @ values_out + attention.out_proj.bias


class ImageGraph(nn.Module):
    """Image-side tensors of the decoder, without a mask input.

    Input: image_embeddings 1x256x64x64 (float16). Outputs, one row per
    token: image_tokens 4096x256 (embedding + SAM's no-mask dense prompt),
    t2i_keys, t2i_values and i2t_queries 4096x128 (the first block's
    projections).
    """

    image_pe: torch.Tensor

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.block = mask_decoder.transformer.layers[0]
        self.register_buffer("image_pe", _dense_pe(prompt_encoder), persistent=False)

    def forward(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        no_mask = self.prompt_encoder.no_mask_embed.weight  # (1, 256)
        tokens = image_embeddings.float().reshape(256, TOKENS).transpose(0, 1) + no_mask
        with_pe = tokens + self.image_pe
        t2i, i2t = self.block.cross_attn_token_to_image, self.block.cross_attn_image_to_token
        return tokens, t2i.k_proj(with_pe), t2i.v_proj(tokens), i2t.q_proj(with_pe)


class MaskGraph(nn.Module):
    """ImageGraph's tensors for a mask input (a refinement), from the no-mask ones.

    SAM's dense prompt for a mask ends in a 1x1 convolution from 16 channels
    (`h`), so replacing the no-mask embedding by it changes every token by
    `h W + b - no_mask`, and each first-block projection (linear) by that
    times its weight: a rank-16 update, `h (W Wp) + (b - no_mask) Wp`, which
    costs 4096 x 16 x 128 a projection instead of 4096 x 256 x 128.

    Inputs: ImageGraph's four outputs and mask_input 1x1x256x256 (logits).
    Outputs: the same four tensors with the mask's dense prompt.
    """

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
            for name, linear in (("keys", t2i.k_proj), ("values", t2i.v_proj),
                                 ("queries", i2t.q_proj)):  # fmt: skip
                self.register_buffer(f"{name}_weight", weight @ linear.weight.transpose(0, 1))
                self.register_buffer(f"{name}_shift", shift @ linear.weight.transpose(0, 1))
            self.register_buffer("tokens_weight", weight.clone())
            self.register_buffer("tokens_shift", shift.clone())

    def forward(
        self,
        image_tokens: torch.Tensor,
        t2i_keys: torch.Tensor,
        t2i_values: torch.Tensor,
        i2t_queries: torch.Tensor,
        mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        h = self.features(mask_input).reshape(-1, TOKENS).transpose(0, 1)  # (4096, 16)
        out = []
        for name, base in (("tokens", image_tokens), ("keys", t2i_keys),
                           ("values", t2i_values), ("queries", i2t_queries)):  # fmt: skip
            weight, shift = getattr(self, f"{name}_weight"), getattr(self, f"{name}_shift")
            out.append(base + h @ weight + shift)
        return tuple(out)


class PromptGraph(nn.Module):
    """The prompt-dependent rest of the decoder.

    Inputs: ImageGraph's four outputs, point_coords 1xNx2 (x, y) in the 1024
    model frame and point_labels 1xN (1 positive, 0 negative, 2/3 box
    corners, -1 padding). Outputs: low_res_masks 1x4x256x256 logits and
    iou_predictions 1x4 (index 0 is the single-mask output, 1..3 the
    multimask outputs), as MaskDecoder.predict_masks returns them.
    """

    image_pe: torch.Tensor
    up1_weight: torch.Tensor
    up1_bias: torch.Tensor
    up2_weight: torch.Tensor
    up2_bias: torch.Tensor

    def __init__(
        self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, *, fold: bool = False
    ) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.decoder = mask_decoder
        self.fold = fold
        self.img_size = prompt_encoder.input_image_size[0]
        self.register_buffer("image_pe", _dense_pe(prompt_encoder), persistent=False)
        up = mask_decoder.output_upscaling
        conv1, norm, conv2 = up[0], up[1], up[3]
        # Per pixel: 256 channels -> a 2x2 block of 64 (columns ordered a, b, channel).
        self.register_buffer("up1_weight", conv1.weight.permute(0, 2, 3, 1).reshape(256, -1))
        self.register_buffer("up1_bias", conv1.bias.repeat(4))
        self.register_buffer("up2_weight", conv2.weight.permute(0, 2, 3, 1).reshape(64, -1))
        self.register_buffer("up2_bias", conv2.bias.repeat(4))
        self.norm = norm

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

    def forward(
        self,
        image_tokens: torch.Tensor,
        t2i_keys: torch.Tensor,
        t2i_values: torch.Tensor,
        i2t_queries: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        state = (image_tokens, t2i_keys, t2i_values, i2t_queries)
        queries, keys = self._transformer(state, point_coords, point_labels)
        masks = self._masks(keys, self._hyper_in(queries))
        iou = self.decoder.iou_prediction_head(queries[0:1])
        return masks[None], iou

    def _transformer(
        self,
        state: tuple[torch.Tensor, ...],
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and prompt tokens through the two-way transformer: (queries, keys)."""
        decoder = self.decoder
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens, self.sparse_embeddings(point_coords, point_labels)])
        return self._two_way(tokens, *state)

    def _hyper_in(self, queries: torch.Tensor) -> torch.Tensor:
        """(4, 32): each mask token through its hypernetwork MLP."""
        mlps = self.decoder.output_hypernetworks_mlps
        return torch.stack([mlp(queries[1 + i]) for i, mlp in enumerate(mlps)])

    def _two_way(
        self,
        point_embedding: torch.Tensor,
        keys: torch.Tensor,
        t2i_keys: torch.Tensor,
        t2i_values: torch.Tensor,
        i2t_queries: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TwoWayTransformer.forward, the first block's image projections given."""
        transformer = self.decoder.transformer
        key_pe, query_pe = self.image_pe, point_embedding
        queries = point_embedding
        for index, block in enumerate(transformer.layers):
            if block.skip_first_layer_pe:
                queries = _attention(block.self_attn, queries, queries, queries)
            else:
                q = queries + query_pe
                queries = queries + _attention(block.self_attn, q, q, queries)
            queries = block.norm1(queries)
            t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
            with_pe = keys + key_pe
            if index == 0:
                q = t2i.q_proj(queries + query_pe)
                attn_out = _attend(t2i, q, t2i_keys, t2i_values)
            elif self.fold:
                attn_out = _tokens_attend_image(t2i, queries + query_pe, with_pe, keys)
            else:
                attn_out = _attention(t2i, queries + query_pe, with_pe, keys)
            queries = block.norm2(queries + attn_out)
            queries = block.norm3(queries + block.mlp(queries))
            q = queries + query_pe
            if self.fold:
                image_q = i2t_queries if index == 0 else None
                attn_out = _image_attends_tokens(i2t, image_q, with_pe, q, queries)
            else:
                image_q = i2t_queries if index == 0 else i2t.q_proj(with_pe)
                attn_out = _attend(i2t, image_q, i2t.k_proj(q), i2t.v_proj(queries))
            keys = block.norm4(keys + attn_out)
        final = transformer.final_attn_token_to_image
        q, with_pe = queries + query_pe, keys + key_pe
        if self.fold:
            attn_out = _tokens_attend_image(final, q, with_pe, keys)
        else:
            attn_out = _attention(final, q, with_pe, keys)
        return transformer.norm_final_attn(queries + attn_out), keys

    def _masks(self, keys: torch.Tensor, hyper_in: torch.Tensor) -> torch.Tensor:
        """(K, 256, 256) mask logits from the image tokens and K rows of hyper_in."""
        norm = self.norm
        parts = []
        # In bands of 4 grid rows: each band's 1 MiB intermediates stay in the
        # cache instead of 8 MiB tensors going through memory (-1.5 ms, 7 %).
        for band in keys.chunk(UPSCALE_BANDS, dim=0):
            x = (band @ self.up1_weight + self.up1_bias).reshape(-1, 64)
            x = functional.gelu(functional.layer_norm(x, (64,), norm.weight, norm.bias, norm.eps))
            x = functional.gelu(x @ self.up2_weight + self.up2_bias).reshape(-1, 32)
            parts.append(x @ hyper_in.transpose(0, 1))
        masks = torch.cat(parts).reshape(GRID, GRID, 2, 2, 2, 2, -1)
        # (i, j, a, b, c, d, mask) -> mask, y = 4i + 2a + c, x = 4j + 2b + d
        return masks.permute(6, 0, 2, 4, 1, 3, 5).reshape(-1, GRID * 4, GRID * 4)


class ChoiceGraph(PromptGraph):
    """PromptGraph that returns only the mask a click keeps.

    One more input, multimask (1,): 1 picks the multimask output (1..3) with
    the best predicted IoU, as SamPredictor's callers do for a lone first
    click; 0 the single-mask output (0). Outputs: low_res_masks 1x1x256x256,
    iou_predictions 1x4 and mask_index (1,) int64. The upscaling is shared by
    the four masks, so this saves only the other three's last product and
    reordering (about 1.5 ms of 21 on 2 cores).
    """

    def forward(  # type: ignore[override]
        self,
        image_tokens: torch.Tensor,
        t2i_keys: torch.Tensor,
        t2i_values: torch.Tensor,
        i2t_queries: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        multimask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        state = (image_tokens, t2i_keys, t2i_values, i2t_queries)
        queries, keys = self._transformer(state, point_coords, point_labels)
        iou = self.decoder.iou_prediction_head(queries[0:1])
        best = torch.argmax(iou[0, 1:]).reshape(1) + 1
        index = torch.where(multimask > 0.5, best, torch.zeros_like(best))
        hyper_in = self._hyper_in(queries).index_select(0, index)
        return self._masks(keys, hyper_in)[None], iou, index


def _dense_pe(prompt_encoder: PromptEncoder) -> torch.Tensor:
    """The 64x64 grid's positional encoding, one row per token (4096x256)."""
    with torch.no_grad():
        return prompt_encoder.get_dense_pe()[0].reshape(256, TOKENS).transpose(0, 1).contiguous()
