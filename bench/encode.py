"""Image encoder throughput: segment_anything's SamPredictor.set_image in a
loop against maskroom's SamEngine.embed_batch, on a full-size SAM with random
weights (timings are the real model's; the masks are not).

Tables:
- Throughput: images/s and s/image of each encoder path over the same
  images, measured in rounds that interleave the paths (so the load other
  programs put on the machine falls on all alike); "vs SamPredictor" is the
  median over rounds of the ratio within a round.
- Mask agreement: masks decoded by one float32 decoder (SamEngine.decode,
  torch) from each path's stored float16 embedding against those from
  SamPredictor's features, over random clicks and boxes.

Paths: the float32 engine (SDPA attention, torch preprocessing, `max_batch`
images per ViT pass: numerically the reference) and, where bfloat16 is
native (CUDA, or a CPU with avx512_bf16 / AMX), the bfloat16 autocast engine.

Environment: BENCH_DEVICE (auto, cpu, cuda), BENCH_ENCODE_ARCHS (default
vit_b; vit_h is about 3x slower), BENCH_QUICK. `python -m bench.encode
--device cuda` runs this benchmark alone.

The random weights get every tensor perturbed (as tests/tiny_sam.py does),
so the relative-position tables and position embedding, zero in a fresh
model, take part in the agreement check.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.common import Table, bench_home, bench_image, load_note, machine_table, options
from worker.engines.base import EmbeddingSet, Prompt, Tile
from worker.engines.sam import loading as sam_loading
from worker.engines.sam.encoder import Precision, pick_device, pick_dtype
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import EngineSpec
from worker.metrics import iou

SEED = 0
PROMPTS = 48


@dataclass(frozen=True)
class Plan:
    max_batch: int  # images per round and path: one engine batch
    rounds: int

    @property
    def images(self) -> int:
        return self.max_batch * self.rounds


@dataclass(frozen=True)
class Timings:
    """Per path, one figure per round: wall-clock and process CPU seconds."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]


def plan(device: torch.device, quick: bool) -> Plan:
    if device.type == "cuda":
        return Plan(max_batch=8, rounds=2 if quick else 4)
    return Plan(max_batch=2, rounds=1 if quick else 3)


def run() -> list[Table]:
    device = pick_device(os.environ.get("BENCH_DEVICE") or "auto")
    archs = (os.environ.get("BENCH_ENCODE_ARCHS") or "vit_b").split(",")
    tables: list[Table] = []
    for arch in archs:
        tables += bench_arch(arch.strip(), device, plan(device, options().quick))
    return tables


def bench_arch(arch: str, device: torch.device, how: Plan) -> list[Table]:
    checkpoint = perturbed_checkpoint(arch)
    spec = EngineSpec(
        name=f"bench-{arch}", arch=arch, checkpoint_path=str(checkpoint), sha256="0" * 64
    )
    images = bench_images(how.images)
    paths: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {}
    paths["SamPredictor.set_image loop, float32"] = predictor_path(checkpoint, arch, device)
    engines: dict[str, SamEngine] = {"float32": _engine(spec, device, "float32", how.max_batch)}
    if pick_dtype(device, "auto") == torch.bfloat16:
        engines["bfloat16"] = _engine(spec, device, "bfloat16", how.max_batch)
    for name, engine in engines.items():
        paths[f"SamEngine.embed_batch, {name} (batch {how.max_batch})"] = _engine_path(engine)
    timings, features = _measure(paths, images, how, device)
    return [
        _throughput_table(arch, device, how, timings),
        _agreement_table(arch, engines["float32"], images, features),
    ]


def _engine(
    spec: EngineSpec, device: torch.device, precision: Precision, max_batch: int
) -> SamEngine:
    return SamEngine(
        spec, backend="torch", device=str(device), precision=precision, max_batch=max_batch
    )


def _engine_path(engine: SamEngine) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    return lambda images: [e.arrays[0] for e in engine.embed_batch(images)]


def predictor_path(
    checkpoint: Path, arch: str, device: torch.device
) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """segment_anything's own loop: set_image per image, features kept as float16."""
    from segment_anything import SamPredictor

    predictor = SamPredictor(sam_loading.load_sam(checkpoint, arch).to(device))

    def embed(images: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for image in images:
            predictor.set_image(image)
            out.append(predictor.features[0].to("cpu", torch.float16).numpy())
        return out

    return embed


def _measure(
    paths: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]],
    images: list[np.ndarray],
    how: Plan,
    device: torch.device,
) -> tuple[Timings, dict[str, list[np.ndarray]]]:
    """Wall and CPU seconds of each path on each round's batch (paths interleaved per
    round) and each path's features of every image."""
    if device.type == "cuda":
        for run_path in paths.values():  # CUDA kernels and autotuning before timing
            run_path(images[: how.max_batch])
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in paths}
    features: dict[str, list[np.ndarray]] = {name: [] for name in paths}
    for start in range(0, how.images, how.max_batch):
        batch = images[start : start + how.max_batch]
        for name, run_path in paths.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            features[name] += run_path(batch)
            seconds[name].append(time.perf_counter() - began)
            cpu_seconds[name].append(time.process_time() - began_cpu)
    return Timings(seconds, cpu_seconds), features


def _throughput_table(arch: str, device: torch.device, how: Plan, timings: Timings) -> Table:
    table = Table(
        f"Image encoder throughput: {arch}, {device.type}",
        ["path", "images", "s / image", "images / s", "vs SamPredictor (range)", "CPU s / image"],
    )
    reference = next(iter(timings.wall.values()))
    for name, times in timings.wall.items():
        per_image = sum(times) / how.images
        ratios = [r / t for r, t in zip(reference, times, strict=True)]
        spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
        ratio = f"{statistics.median(ratios):.2f}x{spread}"
        cpu = sum(timings.cpu[name]) / how.images
        table.add(name, how.images, per_image, 1 / per_image, ratio, cpu)
    table.notes += [
        f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; "
        f"{how.rounds} rounds of {how.max_batch} images, each round through every path in "
        "turn; the ratio is the median of the rounds' ratios",
        "CPU s: the process's CPU time (all threads), steadier than wall time on a shared "
        "machine; on a GPU it is the host's share only",
        load_note(),
    ]
    return table


def _agreement_table(
    arch: str, decoder: SamEngine, images: list[np.ndarray], features: dict[str, list[np.ndarray]]
) -> Table:
    table = Table(
        f"Mask agreement with SamPredictor's features: {arch}",
        [
            "embedding",
            "prompts",
            "mean IoU",
            "min IoU",
            "max feature error",
            "masks neither empty nor full",
        ],
    )
    names = list(features)
    reference = features[names[0]]
    for name in names[1:]:
        ious, partial = [], 0
        for i, image in enumerate(images[:2]):
            want_set = _as_embedding(decoder, reference[i], image)
            got_set = _as_embedding(decoder, features[name][i], image)
            for prompt in random_prompts(PROMPTS // 2, image.shape[:2], seed=i):
                want = _full_mask(decoder, want_set, prompt)
                ious.append(iou(_full_mask(decoder, got_set, prompt), want))
                partial += 0 < want.sum() < want.size
        error = max(
            float(np.abs(g.astype(np.float32) - r).max() / np.abs(r.astype(np.float32)).max())
            for g, r in zip(features[name], reference, strict=True)
        )
        table.add(
            name, len(ious), f"{np.mean(ious):.4f}", f"{min(ious):.4f}", f"{error:.2g}", partial
        )
    table.notes.append(
        "one float32 torch decoder for all; the feature error is relative to the largest "
        "reference value"
    )
    return table


def _as_embedding(engine: SamEngine, features: np.ndarray, image: np.ndarray) -> EmbeddingSet:
    height, width = image.shape[:2]
    scale = sam_loading.IMAGE_SIZE / max(height, width)
    input_size = [int(height * scale + 0.5), int(width * scale + 0.5)]
    return EmbeddingSet(
        engine_key=engine.key,
        image_height=height,
        image_width=width,
        tiles=[Tile(0, 0, width, height)],
        arrays=[features],
        meta={"input_size": input_size, "original_size": [height, width], "model_size": 1024},
    )


def _full_mask(engine: SamEngine, embedding: EmbeddingSet, prompt: Prompt) -> np.ndarray:
    result = engine.decode(embedding, prompt, None)
    mask = np.zeros((embedding.image_height, embedding.image_width), dtype=bool)
    h, w = result.mask_crop.shape
    mask[result.y0 : result.y0 + h, result.x0 : result.x0 + w] = result.mask_crop
    return mask


def random_prompts(count: int, size: tuple[int, int], seed: int) -> list[Prompt]:
    """Single clicks, two or three clicks (one negative maybe) and boxes, image pixels."""
    rng = np.random.default_rng(seed)
    height, width = size
    prompts = []
    for i in range(count):
        if i % 4 == 3:
            x0, y0 = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
            side_x, side_y = rng.uniform(20, width * 0.2), rng.uniform(20, height * 0.2)
            prompts.append(Prompt(box_xyxy_image=(x0, y0, x0 + side_x, y0 + side_y)))
            continue
        points = tuple(
            (
                float(rng.uniform(0, width)),
                float(rng.uniform(0, height)),
                int(j == 0 or rng.random() < 0.5),
            )
            for j in range(1 + i % 3)
        )
        prompts.append(Prompt(points_xy_image=points))
    return prompts


def bench_images(count: int) -> list[np.ndarray]:
    """`count` different (H, W, 3) uint8 images: the benchmark picture shifted,
    every other one cropped to 768 x 1024 (shrunk and padded like a camera frame)."""
    picture = bench_image().astype(np.float32)
    low, high = np.percentile(picture, [1, 99.5])
    gray = np.clip((picture - low) / max(high - low, 1.0) * 255, 0, 255).astype(np.uint8)
    images = []
    for i in range(count):
        shifted = np.roll(gray, (97 * i, 211 * i), axis=(0, 1))
        if i % 2:
            shifted = shifted[:768]
        images.append(np.ascontiguousarray(np.repeat(shifted[..., None], 3, axis=2)))
    return images


def perturbed_checkpoint(arch: str) -> Path:
    """A random `arch` (seed 0) with every tensor perturbed by N(0, 0.02), cached."""
    path = bench_home() / f"sam_{arch}_random_seed{SEED}_perturbed.pth"
    if not path.is_file():
        torch.manual_seed(SEED)
        sam = sam_loading.build_sam(sam_loading.OFFICIAL_CONFIGS[arch])
        with torch.no_grad():
            for param in sam.parameters():
                param.add_(torch.randn_like(param) * 0.02)
        temp = path.with_suffix(".part")
        torch.save(sam.state_dict(), temp)
        os.replace(temp, path)
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.encode", description=__doc__)
    parser.add_argument("--device", help="auto (default), cpu or cuda")
    parser.add_argument("--arch", help="comma-separated archs (default vit_b)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.device:
        os.environ["BENCH_DEVICE"] = args.device
    if args.arch:
        os.environ["BENCH_ENCODE_ARCHS"] = args.arch
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    print(machine_table().render(), flush=True)
    for table in run():
        print(table.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
