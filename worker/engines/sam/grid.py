"""Proposal candidates from SAM: a grid of clicks per tile.

The approach of segment_anything's automatic mask generator: one positive
click per grid point, all three multimask outputs of each, kept when SAM's
predicted IoU and the mask's stability score (computed on the 256x256
low-resolution logits, inside the part that covers the image) pass.

Decoding: with the engine's ONNX decoder (the CPU default) click by click,
since it keeps the image-side work of a tile once for all its clicks;
measured on 2 shared cores that is ~70 ms a click against 170-340 ms in
torch, where batching clicks did not help. Without it, through
segment_anything's modules in batches of `points_per_batch` clicks (what
pays on a GPU).

A tile's features are its pixels resized by ResizeLongestSide(1024) and
padded, as `SamEngine.embed` makes them, so its model-frame size follows
from its size in pixels; this holds for a tiled embedding's native tiles
and its shrunk overview alike. Masks come back in the image frame.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder

from worker.engines.base import EmbeddingSet, MaskResult, Prompt, Tile
from worker.engines.proposing import ProposalSettings, grid_points, stability_score
from worker.engines.sam.decoder.onnx import OnnxDecoder
from worker.engines.sam.loading import EMBEDDING_SHAPE, IMAGE_SIZE
from worker.engines.sam.masks import LOW_RES, MASK_THRESHOLD, upsample_region


class GridDecoder(Protocol):
    """What the grid needs of a SAM engine (worker/engines/sam/engine.py's SamEngine,
    which calls this module from its `propose`)."""

    key: str
    embedding_key: str
    onnx: OnnxDecoder | None
    square: bool  # the image fills the model input (MedSAM): masks upsampled directly
    prompt_encoder: PromptEncoder
    mask_decoder: MaskDecoder

    def prompt_arrays(
        self, prompt: Prompt, original_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def input_size(self, height: int, width: int) -> tuple[int, int]: ...

    def to_model(self, points_xy: np.ndarray, size: tuple[int, int]) -> np.ndarray: ...


def grid_candidates(
    engine: GridDecoder, embedding: EmbeddingSet, settings: ProposalSettings
) -> list[MaskResult]:
    """Candidates of every tile that pass the quality filter, in the image frame."""
    if embedding.engine_key != engine.embedding_key:
        raise ValueError(f"embedding of {embedding.engine_key} given to {engine.key}")
    out: list[MaskResult] = []
    for index, tile in enumerate(embedding.tiles):
        out += tile_candidates(engine, embedding.arrays[index], tile, index, settings)
    return out


def tile_candidates(
    engine: GridDecoder,
    features: np.ndarray,
    tile: Tile,
    tile_index: int,
    settings: ProposalSettings,
) -> list[MaskResult]:
    if features.shape != EMBEDDING_SHAPE:
        raise ValueError(f"a SAM tile embedding is {EMBEDDING_SHAPE}, got {features.shape}")
    tile_size = (tile.height, tile.width)
    input_size = engine.input_size(tile.height, tile.width)
    points = grid_points(Tile(0, 0, tile.width, tile.height), settings.points_per_side)
    out: list[MaskResult] = []
    for start in range(0, len(points), settings.points_per_batch):
        batch = points[start : start + settings.points_per_batch]
        logits, ious = decode_clicks(engine, features, batch, tile_size)
        for i in np.flatnonzero(quality_keep(logits, ious, input_size, settings)):
            crop, x0, y0 = upsample_region(
                logits[i], input_size, tile_size, MASK_THRESHOLD, direct=engine.square
            )
            if crop.size:
                out.append(
                    MaskResult(crop, x0 + tile.x0, y0 + tile.y0, float(ious[i]), None, tile_index)
                )
    return out


def decode_clicks(
    engine: GridDecoder,
    features: np.ndarray,
    points_xy_tile: np.ndarray,
    tile_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Decode one positive click per row of `points_xy_tile` (Nx2, tile pixels)
    against a tile's (256, 64, 64) features.

    Returns the 3N multimask low-resolution logits (3N x 256 x 256,
    click-major) and their predicted IoUs (3N).
    """
    if engine.onnx is None:
        return _decode_clicks_torch(engine, features, points_xy_tile, tile_size)
    logits, ious = [], []
    for x, y in points_xy_tile:
        prompt = Prompt(points_xy_image=((float(x), float(y), 1),))
        coords, labels = engine.prompt_arrays(prompt, tile_size)
        # The same `features` object each time: the decoder keeps its image state.
        masks, scores = engine.onnx.run_all(features, coords, labels)
        logits.append(masks[1:])  # output 0 is the single-mask one
        ious.append(scores[1:])
    return np.concatenate(logits), np.concatenate(ious)


def _decode_clicks_torch(
    engine: GridDecoder,
    features: np.ndarray,
    points_xy_tile: np.ndarray,
    tile_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """`decode_clicks` as one batch through segment_anything's modules."""
    coords = engine.to_model(np.asarray(points_xy_tile, dtype=np.float64), tile_size)
    with torch.inference_mode():
        image = torch.from_numpy(np.asarray(features, dtype=np.float32))[None]
        xy = torch.as_tensor(coords, dtype=torch.float32)[:, None, :]
        labels = torch.ones((len(coords), 1), dtype=torch.int64)
        sparse, dense = engine.prompt_encoder(points=(xy, labels), boxes=None, masks=None)
        masks, ious = engine.mask_decoder(
            image_embeddings=image,
            image_pe=engine.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
    return masks.reshape(-1, LOW_RES, LOW_RES).numpy(), ious.reshape(-1).numpy()


def quality_keep(
    logits: np.ndarray, ious: np.ndarray, input_size: tuple[int, int], settings: ProposalSettings
) -> np.ndarray:
    """Which masks pass: predicted IoU >= min_predicted_iou and stability >=
    min_stability, on the low-res logits that cover the image (not the padding)."""
    rows = math.ceil(input_size[0] * LOW_RES / IMAGE_SIZE)
    cols = math.ceil(input_size[1] * LOW_RES / IMAGE_SIZE)
    keep = ious >= settings.min_predicted_iou
    for i in np.flatnonzero(keep):
        stability = stability_score(
            logits[i, :rows, :cols], MASK_THRESHOLD, settings.stability_offset
        )
        keep[i] = stability >= settings.min_stability
    return keep
