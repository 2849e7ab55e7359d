"""SAM's prompt encoder + mask decoder as ONNX Runtime sessions.

The graphs of worker/engines/sam/decoder/graphs.py: the image-side work of the
decoder, which a click without a mask input repeats identically for every
prompt on an image, and the prompt-dependent rest, in two forms (plain, and
with the image-side projections folded into the few prompt tokens, cheaper
up to FOLD_MAX_TOKENS tokens); which graph a prompt takes and why they agree
with SAM: README.md beside this file. `OnnxDecoder` keeps the image side of the
embeddings it has seen (weakly keyed on the embedding array, so an entry
lives no longer than the embedding cache holds that array) and runs only a
prompt graph for the next click on the same image; a refinement's folded
graph takes the previous mask as one more input and folds it into the same
products (mask_prompt.py), the plain one gets a state updated by the
mask graph. The graphs take prompts already in the 1024 model frame; a
click's graphs choose the mask in the graph and return only it
(ChoiceGraph), the proposal grid's returns all four. Upsampling stays in
numpy (worker/engines/sam/masks.py), so no graph has image-size dependent parts. Exported
once per engine key with the TorchScript-based exporter (no onnxscript
needed) and cached on disk. (An int8 upscaling was measured and dropped: 3
ms less a click, but box masks at IoU 0.974 to float32 on random weights;
docs/benchmarks.md.)
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
from typing import Any, NamedTuple

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from torch import nn

from worker.engines.sam.decoder.graphs import ChoiceGraph, ImageGraph, PromptGraph, RefineGraph
from worker.engines.sam.decoder.lanes import Lanes
from worker.engines.sam.decoder.mask_prompt import MaskGraph
from worker.engines.sam.decoder.session import Session
from worker.engines.sam.decoder.state import FirstBlock, ImageState, state_names
from worker.engines.sam.decoder.upscaling import mask_frames

logger = logging.getLogger(__name__)

EXPORT_VERSION = 10
OPSET = 17
IMAGE_INPUTS = ["image_embeddings"]

# The image state (state.ImageState): the first block's tensors (all the plain
# graph reads), the upscaling basis's bands, then the bases of the folded
# graphs' low-rank products.
PLAIN_STATE = list(FirstBlock._fields)
STATE_NAMES = state_names()
MASK_INPUTS = [*PLAIN_STATE, "mask_input"]
MASK_OUTPUTS = [f"{name}_with_mask" for name in PLAIN_STATE]  # ONNX names must differ
PROMPT_INPUTS = [*STATE_NAMES, "point_coords", "point_labels"]
CHOICE_INPUTS = [*PROMPT_INPUTS, "multimask"]
REFINE_INPUTS = [*CHOICE_INPUTS, "mask_input"]
OUTPUT_NAMES = ["low_res_masks", "iou_predictions"]
CHOICE_OUTPUTS = [*OUTPUT_NAMES, "mask_index"]
IMAGE_STATES = 32  # image-side tensors kept per decoder (24 MiB each)
OUTPUT_TOKENS = 5  # the IoU token and four mask tokens go before the prompt's
# Up to this many tokens (8 points and the padding, or 7 points and a box)
# the folded prompt graph costs less; beyond, the plain one does.
FOLD_MAX_TOKENS = 14

StateArrays = tuple[np.ndarray, ...]  # an image state's arrays, in STATE_NAMES order


class _Kept(NamedTuple):
    """An image state kept for as long as its embedding array lives."""

    embedding: weakref.ref[np.ndarray]
    state: StateArrays


class DecoderGraph(nn.Module):
    """The exportable parts of SAM's decoder, sharing the checkpoint's modules:
    the image side, a click's prompt graphs (plain and folded) and the
    proposal grid's (folded, all four masks)."""

    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.image = ImageGraph(prompt_encoder, mask_decoder)
        self.mask = MaskGraph(prompt_encoder, mask_decoder)
        self.prompt = ChoiceGraph(prompt_encoder, mask_decoder)
        self.folded = ChoiceGraph(prompt_encoder, mask_decoder, fold=True)
        self.refine = RefineGraph(prompt_encoder, mask_decoder)
        self.grid = PromptGraph(prompt_encoder, mask_decoder, fold=True)


def onnx_path_for(models_dir: Path, engine_key: str) -> Path:
    """The cached prompt graph of `engine_key`; the other graphs lie beside it."""
    return models_dir / f"{engine_key}.decoder-v{EXPORT_VERSION}.onnx"


def _beside(prompt_path: Path, suffix: str) -> Path:
    return prompt_path.with_name(prompt_path.name.removesuffix(".onnx") + f"-{suffix}.onnx")


def image_graph_path(prompt_path: Path) -> Path:
    return _beside(prompt_path, "image")


def folded_graph_path(prompt_path: Path) -> Path:
    return _beside(prompt_path, "folded")


def grid_graph_path(prompt_path: Path) -> Path:
    return _beside(prompt_path, "grid")


def mask_graph_path(prompt_path: Path) -> Path:
    return _beside(prompt_path, "mask")


def refine_graph_path(prompt_path: Path) -> Path:
    return _beside(prompt_path, "refine")


def graph_paths(prompt_path: Path) -> list[Path]:
    return [
        prompt_path,
        image_graph_path(prompt_path),
        folded_graph_path(prompt_path),
        grid_graph_path(prompt_path),
        mask_graph_path(prompt_path),
        refine_graph_path(prompt_path),
    ]


def export_decoder(graph: DecoderGraph, path: Path) -> None:
    """Export the click's prompt graph to `path`, and the other graphs beside
    it, each atomically."""
    image_args = (torch.zeros(1, 256, 64, 64, dtype=torch.float16),)
    with torch.inference_mode(False), torch.no_grad():
        state = ImageState.from_flat(graph.image(*image_args))
    mask_args = (*state.first, torch.zeros(1, 1, 256, 256))
    prompt_args = (*state.flat(), torch.zeros(1, 2, 2), torch.tensor([[1.0, -1.0]]))
    choice_args = (*prompt_args, torch.ones(1))
    refine_args = (*choice_args, torch.zeros(1, 1, 256, 256))
    points = {1: "num_points"}
    dynamic = {"point_coords": points, "point_labels": points}
    _export(graph.image, image_args, image_graph_path(path), IMAGE_INPUTS, STATE_NAMES, {})
    _export(graph.mask, mask_args, mask_graph_path(path), MASK_INPUTS, MASK_OUTPUTS, {})
    for module, target in ((graph.prompt, path), (graph.folded, folded_graph_path(path))):
        _export(module, choice_args, target, CHOICE_INPUTS, CHOICE_OUTPUTS, dynamic)
    _export(graph.grid, prompt_args, grid_graph_path(path), PROMPT_INPUTS, OUTPUT_NAMES, dynamic)
    target = refine_graph_path(path)
    _export(graph.refine, refine_args, target, REFINE_INPUTS, CHOICE_OUTPUTS, dynamic)


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


class OnnxDecoder:
    """The sessions of a DecoderGraph and the kept image states; thread-safe.

    `threads` is each session's intra-op thread count; `image_states` bounds
    how many images' image-side tensors are kept. The proposal grid's
    session is made on first use.
    """

    def __init__(self, path: Path, *, threads: int, image_states: int = IMAGE_STATES) -> None:
        self.path = path
        self.threads = threads
        # A click's graphs run wide alone and narrow beside another (lanes.py).
        self.prompt_session = Lanes(path, threads)
        self.folded_session = Lanes(folded_graph_path(path), threads)
        self.image_session = Lanes(image_graph_path(path), threads)
        self.mask_session = Lanes(mask_graph_path(path), threads)
        self.refine_session = Lanes(refine_graph_path(path), threads)
        self._grid_session: Session | None = None
        self.image_states = image_states
        self._states: OrderedDict[int, _Kept] = OrderedDict()
        # Reentrant: a collected embedding's callback may run in a thread that holds it.
        self._lock = threading.RLock()

    def run(
        self,
        embedding: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
        *,
        multimask: bool,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The mask a click keeps: its low-res logits (256x256), the four IoU
        predictions (4,) and which output it is (`multimask`: the best of
        1..3, else 0).

        `embedding` is the (256, 64, 64) feature map, `coords` Nx2 (x, y) in
        the 1024 model frame, `labels` N, `mask_input` 1x256x256 logits or None.
        """
        folded = len(coords) + OUTPUT_TOKENS <= FOLD_MAX_TOKENS
        if folded and mask_input is not None:
            # The refinement graph folds the mask into the click's own products.
            feeds = self._prompt_feeds(embedding, coords, labels, None)
            feeds["mask_input"] = np.asarray(mask_input, dtype=np.float32).reshape(1, 1, 256, 256)
            session = self.refine_session
        else:
            feeds = self._prompt_feeds(embedding, coords, labels, mask_input)
            session = self.folded_session if folded else self.prompt_session
        feeds["multimask"] = np.array([1.0 if multimask else 0.0], dtype=np.float32)
        masks, ious, index = session.run(CHOICE_OUTPUTS, feeds)
        return mask_frames(masks)[0], ious[0], int(index[0])

    def run_all(
        self, embedding: np.ndarray, coords: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """All four low-res masks (4x256x256) and their IoU predictions (4,)
        of a prompt of at most FOLD_MAX_TOKENS - 5 points, without mask input."""
        if len(coords) + OUTPUT_TOKENS > FOLD_MAX_TOKENS:
            raise ValueError(f"run_all takes at most {FOLD_MAX_TOKENS - OUTPUT_TOKENS} points")
        with self._lock:
            if self._grid_session is None:
                self._grid_session = Session(grid_graph_path(self.path), self.threads)
        feeds = self._prompt_feeds(embedding, coords, labels, None)
        masks, ious = self._grid_session.run(OUTPUT_NAMES, feeds)
        return mask_frames(masks), ious[0]

    def _prompt_feeds(
        self,
        embedding: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
    ) -> dict[str, np.ndarray]:
        feeds = dict(zip(STATE_NAMES, self.image_state(embedding), strict=True))
        if mask_input is not None:
            mask = np.asarray(mask_input, dtype=np.float32).reshape(1, 1, 256, 256)
            updated = self.mask_session.run(MASK_OUTPUTS, {**feeds, "mask_input": mask})
            feeds.update(zip(PLAIN_STATE, updated, strict=True))
        feeds["point_coords"] = coords.astype(np.float32)[None]
        feeds["point_labels"] = labels.astype(np.float32)[None]
        return feeds

    def holds(self, embedding: np.ndarray) -> bool:
        """Whether the image state of this embedding array is kept."""
        with self._lock:
            found = self._states.get(id(embedding))
            return found is not None and found.embedding() is embedding

    def image_state(self, embedding: np.ndarray) -> StateArrays:
        """The image-side tensors of `embedding` without a mask input, kept
        for as long as the array lives (up to `image_states` of them)."""
        key = id(embedding)
        with self._lock:
            found = self._states.get(key)
            if found is not None and found.embedding() is embedding:
                self._states.move_to_end(key)
                return found.state
        state = self._image_run(embedding)
        forget = self._forget_callback(key)
        with self._lock:
            self._states[key] = _Kept(weakref.ref(embedding, forget), state)
            self._states.move_to_end(key)
            while len(self._states) > self.image_states:
                self._states.popitem(last=False)
        return state

    def _forget_callback(self, key: int) -> Any:
        states, lock = weakref.ref(self._states), self._lock

        def forget(ref: weakref.ref[np.ndarray]) -> None:
            with lock:
                held = states()
                if held is not None and key in held and held[key].embedding is ref:
                    del held[key]

        return forget

    def _image_run(self, embedding: np.ndarray) -> StateArrays:
        feeds = {"image_embeddings": np.ascontiguousarray(embedding, dtype=np.float16)[None]}
        return tuple(self.image_session.run(STATE_NAMES, feeds))


def load_or_export(
    graph: DecoderGraph,
    models_dir: Path | None,
    engine_key: str,
    *,
    threads: int,
) -> OnnxDecoder:
    """The cached decoder sessions of `engine_key`, exporting them on first use.

    Without a writable `models_dir` the graphs are exported to a temporary
    folder and used from there (the grid's session is then made at once).
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
        decoder = OnnxDecoder(path, threads=threads)
        decoder._grid_session = Session(grid_graph_path(path), threads)
        return decoder
