"""Proposal candidates from a project's box detector (CellSAM's way): the
detector (worker/engines/sam/detector.py) finds a box for every object of
each tile, and each box prompts SAM's decoder for one mask.

The detector decides what is an object, so SAM's own quality filter is not
applied; a candidate's score is the detector's confidence. Decoding: box by
box through the engine's ONNX decoder (which keeps a tile's image-side work
for all its boxes), else one batch through segment_anything's modules.
"""

from __future__ import annotations

import numpy as np
import torch

from worker.engines.base import EmbeddingSet, MaskResult
from worker.engines.sam.detector import BoxHead, detect
from worker.engines.sam.grid import GridDecoder
from worker.engines.sam.loading import EMBEDDING_SHAPE, IMAGE_SIZE
from worker.engines.sam.masks import LOW_RES, MASK_THRESHOLD, upsample_region


def detected_boxes(
    engine: GridDecoder, head: BoxHead, embedding: EmbeddingSet
) -> tuple[np.ndarray, np.ndarray]:
    """The detector's boxes of every tile (N, 4) in image pixels, and their
    scores (N,). A tiled embedding's tiles overlap: boxes are not merged."""
    boxes, scores = [np.zeros((0, 4))], [np.zeros(0)]
    for index, tile in enumerate(embedding.tiles):
        input_size = engine.input_size(tile.height, tile.width)
        found = detect(head, embedding.arrays[index], input_size)
        if engine.square:  # the tile was resized to the square model input
            scale = np.array([tile.width, tile.height] * 2) / IMAGE_SIZE
        else:
            scale = np.full(4, max(tile.height, tile.width) / IMAGE_SIZE)
        boxes.append(found.boxes * scale + np.array([tile.x0, tile.y0] * 2))
        scores.append(found.scores)
    return np.concatenate(boxes), np.concatenate(scores)


def box_candidates(engine: GridDecoder, head: BoxHead, embedding: EmbeddingSet) -> list[MaskResult]:
    """One mask per detected box of every tile, in the image frame."""
    if embedding.engine_key != engine.embedding_key:
        raise ValueError(f"embedding of {embedding.engine_key} given to {engine.key}")
    out: list[MaskResult] = []
    for index, tile in enumerate(embedding.tiles):
        features = embedding.arrays[index]
        if features.shape != EMBEDDING_SHAPE:
            raise ValueError(f"a SAM tile embedding is {EMBEDDING_SHAPE}, got {features.shape}")
        input_size = engine.input_size(tile.height, tile.width)
        found = detect(head, features, input_size)
        if not len(found.boxes):
            continue
        logits = decode_boxes(engine, features, found.boxes)
        for i, score in enumerate(found.scores):
            crop, x0, y0 = upsample_region(logits[i], input_size, (tile.height, tile.width),
                                           MASK_THRESHOLD, direct=engine.square)  # fmt: skip
            if crop.size:
                out.append(MaskResult(crop, x0 + tile.x0, y0 + tile.y0, float(score), None, index))
    return out


def decode_boxes(engine: GridDecoder, features: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 256, 256) low-res logits of one box prompt each; `boxes` (N, 4) in
    the 1024 model frame."""
    labels = np.array([2.0, 3.0], dtype=np.float32)
    if engine.onnx is not None:
        masks = []
        for box in boxes.astype(np.float32):
            logits, _ = engine.onnx.run_all(features, box.reshape(2, 2), labels)
            masks.append(logits[0])  # the single-mask output, as for any box
        return np.stack(masks)
    out = []
    image = torch.from_numpy(np.asarray(features, dtype=np.float32))[None]
    with torch.inference_mode():
        for start in range(0, len(boxes), TORCH_BATCH):
            chunk = torch.from_numpy(boxes[start : start + TORCH_BATCH].astype(np.float32))
            sparse, dense = engine.prompt_encoder(points=None, boxes=chunk, masks=None)
            logits, _ = engine.mask_decoder(
                image_embeddings=image, image_pe=engine.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=False,
            )  # fmt: skip
            out.append(logits.reshape(-1, LOW_RES, LOW_RES).numpy())
    return np.concatenate(out)


TORCH_BATCH = 32  # boxes per decoder call (each repeats the tile's features)
