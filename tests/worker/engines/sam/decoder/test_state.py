"""The image state's names (worker/engines/sam/decoder/state.py): the ONNX
input and output names stay as exported, and each name reaches the tensor
and the projection it stands for."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_sam import build_tiny_sam
from worker.engines.sam.decoder.low_rank import TOKENS, chained_weights, image_projections
from worker.engines.sam.decoder.onnx import PLAIN_STATE, STATE_NAMES
from worker.engines.sam.decoder.state import ImageState, LaterReads, projected_reads

EXPORTED_NAMES = [
    "image_tokens",
    "t2i_keys",
    "t2i_values",
    "i2t_queries",
    *(f"up_basis_{band:02d}" for band in range(16)),
    "b2_keys",
    "b2_values",
    "b2_queries",
    "final_keys",
    "final_values",
]


def test_the_state_keeps_its_exported_names() -> None:
    assert STATE_NAMES == EXPORTED_NAMES
    assert EXPORTED_NAMES[:4] == PLAIN_STATE


def test_a_flat_state_is_named_in_its_export_order() -> None:
    tensors = [torch.full((1,), float(i)) for i in range(len(STATE_NAMES))]
    state = ImageState.from_flat(tensors)
    assert state.flat() == tuple(tensors)
    named = dict(zip(STATE_NAMES, tensors, strict=True))
    assert state.first.i2t_queries is named["i2t_queries"]
    assert state.up_basis[15] is named["up_basis_15"]
    assert state.later.block(1).keys is named["b2_keys"]
    assert state.later.block(1).queries is named["b2_queries"]
    assert state.later.final.values is named["final_values"]
    with pytest.raises(IndexError):
        state.later.block(0)
    with pytest.raises(ValueError):
        ImageState.from_flat(tensors[:-1])


def test_later_reads_group_three_a_block_then_the_final_two() -> None:
    reads = LaterReads.from_flat(list(range(8)))
    assert [list(block) for block in reads.blocks] == [[0, 1, 2], [3, 4, 5]]
    assert reads.block(2).values == 4 and reads.final.keys == 6
    assert reads.map(str).flat() == [str(i) for i in range(8)]
    with pytest.raises(ValueError):
        LaterReads.from_flat(list(range(4)))


@torch.no_grad()
def test_projected_reads_name_the_linear_layers_they_project_with() -> None:
    decoder = build_tiny_sam(seed=1).mask_decoder
    pe = torch.zeros(TOKENS, 256)
    reads = projected_reads(image_projections(decoder, pe))
    transformer = decoder.transformer
    block = transformer.layers[1]
    final = transformer.final_attn_token_to_image
    linears = {
        "b2_keys": (reads.block(1).keys, block.cross_attn_token_to_image.k_proj, 1),
        "b2_values": (reads.block(1).values, block.cross_attn_token_to_image.v_proj, 1),
        "b2_queries": (reads.block(1).queries, block.cross_attn_image_to_token.q_proj, 1),
        "final_keys": (reads.final.keys, final.k_proj, 2),
        "final_values": (reads.final.values, final.v_proj, 2),
    }
    for name, (read, linear, depth) in linears.items():
        want = chained_weights(decoder, depth, linear.weight.transpose(0, 1))[0]
        torch.testing.assert_close(read.product.basis_weight, want, msg=name)
