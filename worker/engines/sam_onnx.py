"""SAM's prompt encoder + mask decoder as ONNX Runtime sessions.

The graphs of worker/engines/sam_graphs.py: the image-side work of the
decoder, which a click without a mask input repeats identically for every
prompt on an image, and the prompt-dependent rest, in two forms (plain, and
with the image-side projections folded into the few prompt tokens, cheaper
up to FOLD_MAX_TOKENS tokens). `OnnxDecoder` keeps the image side of the
embeddings it has seen (weakly keyed on the embedding array, so an entry
lives no longer than the embedding cache holds that array) and runs only a
prompt graph for the next click on the same image. The graphs take prompts
already in the 1024 model frame and return all four low-resolution masks
with their predicted IoU; choosing a mask and upsampling it stay in numpy
(sam_masks.py), so no graph has image-size dependent parts. Exported once
per engine key with the TorchScript-based exporter (no onnxscript needed)
and cached on disk.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from torch import nn

from worker.engines.sam_graphs import ImageGraph, PromptGraph

logger = logging.getLogger(__name__)

EXPORT_VERSION = 2
OPSET = 17
IMAGE_INPUTS = ["image_embeddings", "mask_input", "has_mask_input"]
STATE_NAMES = ["image_tokens", "t2i_keys", "t2i_values", "i2t_queries"]
PROMPT_INPUTS = [*STATE_NAMES, "point_coords", "point_labels"]
OUTPUT_NAMES = ["low_res_masks", "iou_predictions"]
IMAGE_STATES = 32  # image-side tensors kept per decoder (10 MiB each)
OUTPUT_TOKENS = 5  # the IoU token and four mask tokens go before the prompt's
# Up to this many tokens (8 points and the padding, or 7 points and a box)
# the folded prompt graph costs less; beyond, the plain one does.
FOLD_MAX_TOKENS = 14

ImageState = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class DecoderGraph(nn.Module):
    """The two exportable halves of SAM's decoder, sharing the checkpoint's modules."""

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.image = ImageGraph(prompt_encoder, mask_decoder)
        self.prompt = PromptGraph(prompt_encoder, mask_decoder)
        self.folded = PromptGraph(prompt_encoder, mask_decoder, fold=True)


def onnx_path_for(models_dir: Path, engine_key: str) -> Path:
    """The cached prompt graph of `engine_key`; the image graph lies beside it."""
    return models_dir / f"{engine_key}.decoder-v{EXPORT_VERSION}.onnx"


def image_graph_path(prompt_path: Path) -> Path:
    return prompt_path.with_name(prompt_path.name.removesuffix(".onnx") + "-image.onnx")


def folded_graph_path(prompt_path: Path) -> Path:
    return prompt_path.with_name(prompt_path.name.removesuffix(".onnx") + "-folded.onnx")


def graph_paths(prompt_path: Path) -> list[Path]:
    return [prompt_path, image_graph_path(prompt_path), folded_graph_path(prompt_path)]


def export_decoder(graph: DecoderGraph, path: Path) -> None:
    """Export the prompt graph to `path`, and the image graph and the folded
    prompt graph beside it, each atomically."""
    image_args = (
        torch.zeros(1, 256, 64, 64, dtype=torch.float16),
        torch.zeros(1, 1, 256, 256),
        torch.zeros(1),
    )
    with torch.inference_mode(False), torch.no_grad():
        state = graph.image(*image_args)
    prompt_args = (*state, torch.zeros(1, 2, 2), torch.tensor([[1.0, -1.0]]))
    points = {1: "num_points"}
    _export(graph.image, image_args, image_graph_path(path), IMAGE_INPUTS, STATE_NAMES, {})
    for module, target in ((graph.prompt, path), (graph.folded, folded_graph_path(path))):
        _export(
            module, prompt_args, target, PROMPT_INPUTS, OUTPUT_NAMES,
            {"point_coords": points, "point_labels": points},
        )  # fmt: skip


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                temp,
                dynamo=False,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic_axes,
                opset_version=OPSET,
                do_constant_folding=True,
            )
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(threads, 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads would keep the web process's cores busy between clicks.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class OnnxDecoder:
    """The sessions of a DecoderGraph and the kept image states; thread-safe.

    `threads` is each session's intra-op thread count; `image_states` bounds
    how many images' image-side tensors are kept.
    """

    def __init__(self, path: Path, *, threads: int, image_states: int = IMAGE_STATES) -> None:
        self.prompt_session: Any = _session(path, threads)
        self.folded_session: Any = _session(folded_graph_path(path), threads)
        self.image_session: Any = _session(image_graph_path(path), threads)
        self.image_states = image_states
        self._states: OrderedDict[int, tuple[weakref.ref[np.ndarray], ImageState]] = OrderedDict()
        # Reentrant: a collected embedding's callback may run in a thread that holds it.
        self._lock = threading.RLock()

    def run(
        self,
        embedding: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All four low-res masks (4x256x256) and their IoU predictions (4,).

        `embedding` is the (256, 64, 64) feature map, `coords` Nx2 (x, y) in
        the 1024 model frame, `labels` N, `mask_input` 1x256x256 logits or None.
        """
        if mask_input is None:
            state = self.image_state(embedding)
        else:
            state = self._image_run(embedding, mask_input)
        feeds = dict(zip(STATE_NAMES, state, strict=True))
        feeds["point_coords"] = coords.astype(np.float32)[None]
        feeds["point_labels"] = labels.astype(np.float32)[None]
        folded = len(coords) + OUTPUT_TOKENS <= FOLD_MAX_TOKENS
        session = self.folded_session if folded else self.prompt_session
        masks, ious = session.run(OUTPUT_NAMES, feeds)
        return masks[0], ious[0]

    def image_state(self, embedding: np.ndarray) -> ImageState:
        """The image-side tensors of `embedding` without a mask input, kept
        for as long as the array lives (up to `image_states` of them)."""
        key = id(embedding)
        with self._lock:
            found = self._states.get(key)
            if found is not None and found[0]() is embedding:
                self._states.move_to_end(key)
                return found[1]
        state = self._image_run(embedding, None)
        forget = self._forget_callback(key)
        with self._lock:
            self._states[key] = (weakref.ref(embedding, forget), state)
            self._states.move_to_end(key)
            while len(self._states) > self.image_states:
                self._states.popitem(last=False)
        return state

    def _forget_callback(self, key: int) -> Any:
        states, lock = weakref.ref(self._states), self._lock

        def forget(ref: weakref.ref[np.ndarray]) -> None:
            with lock:
                held = states()
                if held is not None and key in held and held[key][0] is ref:
                    del held[key]

        return forget

    def _image_run(self, embedding: np.ndarray, mask_input: np.ndarray | None) -> ImageState:
        has_mask = mask_input is not None
        feeds = {
            "image_embeddings": np.ascontiguousarray(embedding, dtype=np.float16)[None],
            "mask_input": (
                np.asarray(mask_input, dtype=np.float32).reshape(1, 1, 256, 256)
                if has_mask
                else np.zeros((1, 1, 256, 256), dtype=np.float32)
            ),
            "has_mask_input": np.array([1.0 if has_mask else 0.0], dtype=np.float32),
        }
        tokens, keys, values, queries = self.image_session.run(STATE_NAMES, feeds)
        return tokens, keys, values, queries


def load_or_export(
    graph: DecoderGraph, models_dir: Path | None, engine_key: str, *, threads: int
) -> OnnxDecoder:
    """The cached decoder sessions of `engine_key`, exporting them on first use.

    Without a writable `models_dir` the graphs are exported to a temporary
    folder and used from there.
    """
    if models_dir is not None:
        path = onnx_path_for(models_dir, engine_key)
        try:
            if not all(p.is_file() for p in graph_paths(path)):
                logger.info("Exporting the SAM decoder of %s to %s", engine_key, path)
                export_decoder(graph, path)
            return OnnxDecoder(path, threads=threads)
        except OSError as exc:
            logger.warning("Cannot cache the ONNX decoder in %s (%s)", models_dir, exc)
    with tempfile.TemporaryDirectory() as temp:
        path = Path(temp) / "decoder.onnx"
        export_decoder(graph, path)
        return OnnxDecoder(path, threads=threads)
