"""SAM's prompt encoder + mask decoder as an ONNX Runtime session.

The decoder graph takes the embedding and prompts already in the 1024 model
frame and returns all four low-resolution masks with their predicted IoU;
choosing a mask and upsampling it stay in numpy (sam_masks.py), so the graph
has no image-size dependent parts. Exported once per engine key with the
TorchScript-based exporter (no onnxscript needed) and cached on disk.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from torch import nn

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1
OPSET = 17
INPUT_NAMES = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]
OUTPUT_NAMES = ["low_res_masks", "iou_predictions"]


class DecoderGraph(nn.Module):
    """The traceable decoder: SamPredictor's prompt handling without control flow.

    Inputs (model frame): image_embeddings 1x256x64x64 float16, point_coords
    1xNx2 (x, y) float32, point_labels 1xN float32 (1 positive, 0 negative,
    2/3 box corners, -1 padding), mask_input 1x1x256x256, has_mask_input (1,).
    Outputs: low_res_masks 1x4x256x256 and iou_predictions 1x4 (index 0 is
    the single-mask output, 1..3 the multimask outputs).
    """

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.img_size = prompt_encoder.input_image_size[0]

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pe = self.prompt_encoder
        coords = (point_coords + 0.5) / self.img_size
        sparse = pe.pe_layer._pe_encoding(coords)
        labels = point_labels.unsqueeze(-1).expand_as(sparse)
        sparse = sparse * (labels != -1) + pe.not_a_point_embed.weight * (labels == -1)
        for i in range(pe.num_point_embeddings):
            sparse = sparse + pe.point_embeddings[i].weight * (labels == i)
        dense = has_mask_input * pe.mask_downscaling(mask_input)
        dense = dense + (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return self.mask_decoder.predict_masks(
            image_embeddings=image_embeddings.float(),
            image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )


def onnx_path_for(models_dir: Path, engine_key: str) -> Path:
    return models_dir / f"{engine_key}.decoder-v{EXPORT_VERSION}.onnx"


def export_decoder(graph: DecoderGraph, path: Path) -> None:
    """Export `graph` to `path` atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = (
        torch.zeros(1, 256, 64, 64, dtype=torch.float16),
        torch.zeros(1, 2, 2),
        torch.tensor([[1.0, -1.0]]),
        torch.zeros(1, 1, 256, 256),
        torch.zeros(1),
    )
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                args,
                temp,
                dynamo=False,
                input_names=INPUT_NAMES,
                output_names=OUTPUT_NAMES,
                dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
                opset_version=OPSET,
                do_constant_folding=True,
            )
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class OnnxDecoder:
    """An ONNX Runtime session for a DecoderGraph; `run` is thread-safe."""

    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(threads, 1)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads would keep the web process's cores busy between clicks.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def run(
        self,
        embedding: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All four low-res masks (4x256x256) and their IoU predictions (4,)."""
        has_mask = mask_input is not None
        feeds = {
            "image_embeddings": np.ascontiguousarray(embedding, dtype=np.float16)[None],
            "point_coords": coords.astype(np.float32)[None],
            "point_labels": labels.astype(np.float32)[None],
            "mask_input": (
                np.asarray(mask_input, dtype=np.float32).reshape(1, 1, 256, 256)
                if has_mask
                else np.zeros((1, 1, 256, 256), dtype=np.float32)
            ),
            "has_mask_input": np.array([1.0 if has_mask else 0.0], dtype=np.float32),
        }
        masks, ious = self.session.run(OUTPUT_NAMES, feeds)
        return masks[0], ious[0]


def load_or_export(
    graph: DecoderGraph, models_dir: Path | None, engine_key: str, *, threads: int
) -> OnnxDecoder:
    """The cached decoder session of `engine_key`, exporting it on first use.

    Without a writable `models_dir` the graph is exported to a temporary
    folder and used from there.
    """
    if models_dir is not None:
        path = onnx_path_for(models_dir, engine_key)
        try:
            if not path.is_file():
                logger.info("Exporting the SAM decoder of %s to %s", engine_key, path)
                export_decoder(graph, path)
            return OnnxDecoder(path, threads=threads)
        except OSError as exc:
            logger.warning("Cannot cache the ONNX decoder in %s (%s)", models_dir, exc)
    with tempfile.TemporaryDirectory() as temp:
        path = Path(temp) / "decoder.onnx"
        export_decoder(graph, path)
        return OnnxDecoder(path, threads=threads)
