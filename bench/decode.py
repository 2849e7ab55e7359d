"""The decode path's stages in this process, one thread, interleaved: what a
click costs apart from the network, and the alternatives that were weighed.

- ONNX prompt graph, plain vs folded, by prompt size (tokens T = 5 + points
  + padding or box corners), and the per-image state computed vs kept;
- upsampling the chosen logits to a tight crop and run-length encoding it,
  for random-weight masks (a fine checkerboard: the worst case) and for
  nucleus-shaped logits made from the DSB2018 labels (what a trained SAM gives);
- JSON encoding of the reply (json vs orjson when installed).

Times are CPU ms of this thread (time.thread_time), steadier than wall time
on a shared machine; wall p50 is given beside it.

BENCH_BASELINE=/path/to/older/tree adds that tree's decoder graph,
upsampling and RLE (loaded from its files) as "before" rows, interleaved.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.common import SHARED_DATA, Table, load_note, options, scene


def measure(
    actions: dict[str, Callable[[], object]], rounds: int
) -> dict[str, tuple[float, float]]:
    """(CPU p50 ms, wall p50 ms) of each action, run in a shuffled order each round."""
    for action in actions.values():
        action()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in actions}
    names = list(actions)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            cpu, wall = time.thread_time(), time.perf_counter()
            actions[name]()
            samples[name].append((time.thread_time() - cpu, time.perf_counter() - wall))
    return {
        name: (
            float(np.median([s[0] for s in v])) * 1000,
            float(np.median([s[1] for s in v])) * 1000,
        )
        for name, v in samples.items()
    }


def nucleus_logits(count: int) -> list[np.ndarray]:
    """256x256 logits shaped like DSB2018 nuclei (signed distance, 4 per pixel)."""
    import tifffile
    from scipy import ndimage

    labels = np.tile(tifffile.imread(SHARED_DATA / "nuclei_dsb2018" / "labels.tif"), (2, 2))
    ids = np.unique(labels)[1:]
    made = []
    for label in ids[:: max(1, len(ids) // count)][:count]:
        small = (labels == label).reshape(256, 4, 256, 4).mean(axis=(1, 3)) >= 0.5
        inside = ndimage.distance_transform_edt(small)
        outside = ndimage.distance_transform_edt(~small)
        made.append(((inside - outside) * 4).astype(np.float32))
    return made


def baseline_module(relative: str) -> ModuleType | None:
    """A module file of the BENCH_BASELINE tree, loaded under a name of its own."""
    tree = os.environ.get("BENCH_BASELINE")
    if not tree:
        return None
    path = Path(tree) / relative
    spec = importlib.util.spec_from_file_location(f"baseline_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def baseline_decoder(engine: Any, folder: Path) -> Any:
    """The BENCH_BASELINE tree's ONNX decoder for the same weights, or None.

    Its `worker` package is imported in place of this tree's for the time of
    the export (its modules import one another by package name), then this
    tree's modules are put back; the decoder keeps the old classes it made.
    """
    tree = os.environ.get("BENCH_BASELINE")
    if not tree:
        return None
    ours = {name: module for name, module in sys.modules.items() if _in_worker(name)}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(Path(tree).resolve()))
    try:
        old = importlib.import_module("worker.engines.sam.decoder.onnx")
        graph = old.DecoderGraph(engine.prompt_encoder, engine.mask_decoder).eval()
        return old.load_or_export(graph, folder, "baseline", threads=1)
    finally:
        sys.path.pop(0)
        for name in [name for name in sys.modules if _in_worker(name)]:
            del sys.modules[name]
        sys.modules.update(ours)


def _in_worker(name: str) -> bool:
    return name == "worker" or name.startswith("worker.")


def baseline_click(before: Any, features: np.ndarray) -> Callable[[], object]:
    """One click on the baseline decoder (session 1's `run` had no multimask)."""
    coords = np.array([[300.0, 400.0], [0.0, 0.0]], dtype=np.float32)
    one_click = np.array([1.0, -1.0], dtype=np.float32)
    if "multimask" in inspect.signature(before.run).parameters:
        return lambda: before.run(features, coords, one_click, None, multimask=True)
    return lambda: before.run(features, coords, one_click, None)


def baseline_actions(
    kind: str,
    logits_list: list[np.ndarray],
    crops: list[tuple[np.ndarray, int, int]],
    old_masks: Any,
    old_rle: Any,
) -> dict[str, Callable[[], object]]:
    """The BENCH_BASELINE tree's upsampling and RLE on the same masks (C-ordered
    crops, as that code made them)."""
    c_crops = [(np.ascontiguousarray(crop), x0, y0) for crop, x0, y0 in crops]

    def upsample() -> object:
        return [old_masks.upsample_region(lg, (1024, 1024), (1024, 1024)) for lg in logits_list]

    def encode() -> object:
        return [old_rle.encode_crop(crop, x0, y0, 1024, 1024) for crop, x0, y0 in c_crops]

    return {f"{kind}: before: upsample": upsample, f"{kind}: before: RLE": encode}


def postprocess_actions(
    kind: str,
    logits_list: list[np.ndarray],
    crops: list[tuple[np.ndarray, int, int]],
    replies: list[dict[str, object]],
) -> dict[str, Callable[[], object]]:
    from worker import rle
    from worker.engines.sam import masks as sam_masks

    def upsample() -> object:
        return [sam_masks.upsample_region(lg, (1024, 1024), (1024, 1024)) for lg in logits_list]

    def encode() -> object:
        return [rle.encode_crop(crop, x0, y0, 1024, 1024) for crop, x0, y0 in crops]

    def dumps() -> object:
        return [json.dumps(reply) for reply in replies]

    actions: dict[str, Callable[[], object]] = {
        f"{kind}: upsample to a tight crop": upsample,
        f"{kind}: RLE of the crop": encode,
        f"{kind}: json.dumps of the reply": dumps,
    }
    try:
        import orjson

        actions[f"{kind}: orjson.dumps of the reply"] = lambda: [orjson.dumps(r) for r in replies]
    except ImportError:
        pass
    return actions


def run() -> list[Table]:
    made = scene(images=1)  # sets Django up first
    from backend.segmentation.selectors import engine_spec_named
    from bench.common import MODEL_NAME
    from worker import rle
    from worker.engines.sam import masks as sam_masks
    from worker.engines.sam.decoder import onnx as sam_onnx
    from worker.engines.sam.decoder.upscaling import mask_frames
    from worker.engines.sam.engine import SamEngine

    rounds = 8 if options().quick else 40
    spec = engine_spec_named(MODEL_NAME)
    assert spec is not None
    engine = SamEngine(spec, load_image_encoder=False, backend="onnx", threads=1)
    assert engine.onnx is not None
    decoder = engine.onnx
    features = made.features[0].astype(np.float16)
    state = decoder.image_state(features)
    names = sam_onnx.STATE_NAMES

    def prompt_run(session: object, points: int) -> Callable[[], object]:
        coords = np.random.default_rng(points).uniform(0, 1024, (1, points + 1, 2))
        labels = np.array([[1.0] * points + [-1.0]], dtype=np.float32)
        feeds = {**dict(zip(names, state, strict=True)), "point_coords": coords.astype("f4"),
                 "point_labels": labels, "multimask": np.ones(1, "f4")}  # fmt: skip
        # The whole click's graph work: the run and the logits' reordering.
        return lambda: mask_frames(session.run(None, feeds)[0])  # type: ignore[attr-defined]

    graphs = Table("ONNX decoder graphs (1 intra-op thread)", ["what", "CPU ms p50", "wall ms p50"])
    previous = np.random.default_rng(0).standard_normal((1, 1, 256, 256), "f4")
    mask_feeds = {**dict(zip(names, state, strict=True)), "mask_input": previous}
    actions: dict[str, Callable[[], object]] = {
        "image state: computed (first click on an image)": lambda: decoder._image_run(features),
        "mask state: a refinement's, from the kept image state": lambda: decoder.mask_session.run(
            None, mask_feeds
        ),
    }
    folder = Path(tempfile.mkdtemp(prefix="baseline-", dir=made.checkpoint.parent))
    before = baseline_decoder(engine, folder)
    if before is not None:
        actions["before: decoder.run, a click (T=7)"] = baseline_click(before, features)
        actions["decoder.run, a click (T=7)"] = baseline_click(decoder, features)
    for points in (1, 4, 8, 12):
        tokens = points + 6
        actions[f"prompt graph, plain, T={tokens}"] = prompt_run(decoder.prompt_session, points)
        actions[f"prompt graph, folded, T={tokens}"] = prompt_run(decoder.folded_session, points)
    for name, (cpu, wall) in measure(actions, rounds).items():
        graphs.add(name, cpu, wall)
    graphs.notes.append("the folded graph is used up to T = 14; a kept image state costs nothing")

    post = Table("Postprocessing one mask (1024x1024 image)", ["what", "CPU ms p50", "wall ms p50"])
    rng = np.random.default_rng(0)
    random_logits = []
    for _ in range(4):
        xy = rng.uniform(0, 1024, 2)
        coords = np.array([xy, [0.0, 0.0]], dtype=np.float32)
        logits, _, _ = decoder.run(
            features, coords, np.array([1.0, -1.0], "f4"), None, multimask=True
        )
        random_logits.append(logits)
    for kind, logits_list in (
        ("random weights", random_logits),
        ("nucleus-shaped", nucleus_logits(4)),
    ):
        crops = [sam_masks.upsample_region(lg, (1024, 1024), (1024, 1024)) for lg in logits_list]
        runs = np.mean([len(rle.counts_from_string(rle.encode_crop(*c, 1024, 1024)["counts"]))
                        for c in crops])  # fmt: skip
        replies = [{"type": "mask", "request_id": 1, "score": 0.9,
                    "rle": rle.encode_crop(*c, 1024, 1024)} for c in crops]  # fmt: skip
        stage = postprocess_actions(kind, logits_list, crops, replies)
        old_masks = baseline_module("worker/engines/sam/masks.py")
        old_rle = baseline_module("worker/rle.py")
        if old_masks is not None and old_rle is not None:
            stage.update(baseline_actions(kind, logits_list, crops, old_masks, old_rle))
        for name, (cpu, wall) in measure(stage, rounds).items():
            post.add(f"{name} ({runs:.0f} runs)", cpu / len(logits_list), wall / len(logits_list))
    post.notes.append(load_note())
    return [graphs, post]
