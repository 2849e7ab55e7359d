"""The image state by name: the tensors ImageGraph computes once per image.

ONNX graphs and their sessions take and return flat lists, so the state
travels as one (`flat`, in STATE_NAMES order) and is named again in Python
(`ImageState.from_flat`). The mathematics and shapes: README.md beside this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import torch

from worker.engines.sam.decoder.low_rank import ProjectedTokens, projection
from worker.engines.sam.decoder.upscaling import UPSCALE_BANDS

T = TypeVar("T")
U = TypeVar("U")

TWO_WAY_BLOCKS = 2  # SAM's TwoWayTransformer depth (vit_b, vit_l and vit_h alike)


class FirstBlock(NamedTuple):
    """What the first two-way block reads of the image: the tokens (4096,
    256) with the no-mask dense prompt added, and its three projections of
    them, each kept transposed (128, 4096). All the plain graph reads."""

    image_tokens: torch.Tensor
    t2i_keys: torch.Tensor
    t2i_values: torch.Tensor
    i2t_queries: torch.Tensor


class BlockReads(NamedTuple, Generic[T]):
    """A later two-way block's reads of the image tokens: its token-to-image
    keys and values and its image-to-token queries (bases (128, 4096), or
    the ProjectedTokens that make and read them)."""

    keys: T
    values: T
    queries: T


class FinalReads(NamedTuple, Generic[T]):
    """The final token-to-image attention's keys and values."""

    keys: T
    values: T


@dataclass(frozen=True)
class LaterReads(Generic[T]):
    """The reads after the first block, in `low_rank.image_projections`'
    order: each later block's three, then the final attention's two."""

    blocks: tuple[BlockReads[T], ...]
    final: FinalReads[T]

    def block(self, index: int) -> BlockReads[T]:
        """Two-way block `index` (counted from 0; the first has no reads here)."""
        if index < 1:
            raise IndexError("the first block's reads are FirstBlock's")
        return self.blocks[index - 1]

    def flat(self) -> list[T]:
        return [item for block in self.blocks for item in block] + list(self.final)

    def map(self, function: Callable[[T], U]) -> LaterReads[U]:
        """The same structure with `function` applied to each item, in order."""
        return LaterReads.from_flat([function(item) for item in self.flat()])

    @classmethod
    def from_flat(cls, items: Sequence[T]) -> LaterReads[T]:
        if len(items) < 2 or (len(items) - 2) % 3:
            raise ValueError(f"{len(items)} reads: want 3 per later block and 2 final ones")
        blocks = tuple(BlockReads(*items[i : i + 3]) for i in range(0, len(items) - 2, 3))
        return cls(blocks=blocks, final=FinalReads(*items[-2:]))


def projected_reads(projections: torch.nn.ModuleList) -> LaterReads[ProjectedTokens]:
    """`low_rank.image_projections(...)` by name."""
    return LaterReads.from_flat([projection(projections, i) for i in range(len(projections))])


@dataclass(frozen=True)
class ImageState:
    """ImageGraph's outputs: the first block's tensors, the upscaling basis in
    UPSCALE_BANDS bands of rows (each (256, 256)), and the later reads' bases."""

    first: FirstBlock
    up_basis: tuple[torch.Tensor, ...]
    later: LaterReads[torch.Tensor]

    def flat(self) -> tuple[torch.Tensor, ...]:
        """The tensors in STATE_NAMES order, as the graphs take and return them."""
        return (*self.first, *self.up_basis, *self.later.flat())

    @classmethod
    def from_flat(cls, tensors: Sequence[torch.Tensor]) -> ImageState:
        first, bands = len(FirstBlock._fields), len(FirstBlock._fields) + UPSCALE_BANDS
        if len(tensors) != len(state_names()):
            raise ValueError(f"{len(tensors)} tensors: an image state has {len(state_names())}")
        return cls(
            first=FirstBlock(*tensors[:first]),
            up_basis=tuple(tensors[first:bands]),
            later=LaterReads.from_flat(tensors[bands:]),
        )


def state_names(blocks: int = TWO_WAY_BLOCKS) -> list[str]:
    """The ONNX names of an image state's tensors, in `ImageState.flat` order:
    image_tokens .. i2t_queries, up_basis_00 .. up_basis_15, then b2_keys,
    b2_values, b2_queries (block 2, counted from 1), final_keys, final_values."""
    later = [f"b{index + 1}_{field}" for index in range(1, blocks) for field in BlockReads._fields]
    return [
        *FirstBlock._fields,
        *(f"up_basis_{band:02d}" for band in range(UPSCALE_BANDS)),
        *later,
        *(f"final_{field}" for field in FinalReads._fields),
    ]
