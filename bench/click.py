"""Click to mask: one annotator's round trip over the WebSocket, against the
running server (uvicorn with the real ASGI app: message, decode, RLE, reply),
on a cached embedding of a 1024x1024 image, with the benchmark vit_b.

In the same run and interleaved with it, segment_anything's own
SamPredictor.predict is timed on the same prompts and weights (in this
process, float32 features from set_image, torch's default threads), and each
reply's mask is compared with the reference's.

Scenarios:
- click: one positive point on a fresh object (the multimask path),
- refine: a second point on that object (previous logits fed back),
- box: a box on a fresh object.

Each timed prompt follows a pause of THINK_MS, as an annotator's clicks are
apart: without it the reference's torch threads, still spinning after
predict returns, run on the cores the server's decode needs.

BENCH_COMPARE="before=/path/to/other/tree" adds servers started from other
checkouts or with other options (same home, same model), interleaved with
this one: `label=tree[|uvicorn options[|NAME=value ...]]`, `;` between
entries, e.g. "before=../base;pool1=.||DECODE_THREADS=1".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    REPO,
    STAT_COLUMNS,
    Client,
    Scene,
    Server,
    Stats,
    Table,
    live_server,
    load_note,
    options,
    reference_predictor,
    rle_mask,
    scene,
)
from worker.metrics import iou

SCENARIOS = ("click", "refine", "box")
WARMUP = 5
THINK_MS = 100
TARGET_P50_MS, TARGET_P99_MS = 25.0, 50.0


@dataclass
class Trial:
    """One scenario's prompt: what is sent, and for refine the first click."""

    scenario: str
    points: list[tuple[float, float, int]]
    box: tuple[float, float, float, float] | None = None
    first: tuple[float, float, int] | None = None


@dataclass
class Sample:
    times_ms: dict[str, list[float]] = field(default_factory=dict)
    ious: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, ms: float, agreement: float | None = None) -> None:
        self.times_ms.setdefault(key, []).append(ms)
        if agreement is not None:
            self.ious.setdefault(key, []).append(agreement)


def trials(count: int, size: int, seed: int = 0) -> list[Trial]:
    rng = np.random.default_rng(seed)
    made = []
    for i in range(count):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        x, y = (float(v) for v in rng.uniform(8, size - 8, 2))
        if scenario == "click":
            made.append(Trial(scenario, [(x, y, 1)]))
        elif scenario == "refine":
            dx, dy = rng.uniform(-80, 80, 2)
            second = (float(np.clip(x + dx, 0, size - 1)), float(np.clip(y + dy, 0, size - 1)))
            made.append(Trial(scenario, [(*second, int(rng.random() < 0.5))], first=(x, y, 1)))
        else:
            w, h = rng.uniform(30, 250, 2)
            box = (x, y, float(min(x + w, size - 1)), float(min(y + h, size - 1)))
            made.append(Trial(scenario, [], box=box))
    return made


async def server_trial(
    server: Server, client: Client, trial: Trial
) -> tuple[float, np.ndarray, float]:
    """The timed prompt of a trial (a refine's first click is sent untimed):
    (round trip ms, mask, server CPU ms)."""
    await client.reset()
    if trial.first is not None:
        await client.prompt([trial.first])
    await asyncio.sleep(THINK_MS / 1000)
    cpu = server.cpu_ms()
    ms, reply = await client.prompt(trial.points, trial.box)
    return ms, rle_mask(reply["rle"]), server.cpu_ms() - cpu


def reference_trial(predictor: Any, trial: Trial) -> tuple[float, np.ndarray]:
    """SamPredictor.predict on the same prompt, choosing as maskroom chooses."""
    mask_input = None
    points = trial.points
    if trial.first is not None:
        masks, scores, logits = predictor.predict(
            np.array([trial.first[:2]]), np.array([1]), multimask_output=True
        )
        mask_input = logits[int(np.argmax(scores))][None]
        points = [trial.first, *trial.points]
    coords = np.array([p[:2] for p in points]) if points else None
    labels = np.array([p[2] for p in points]) if points else None
    box = np.array(trial.box) if trial.box is not None else None
    multimask = trial.scenario == "click"
    start = time.perf_counter()
    masks, scores, _ = predictor.predict(
        coords, labels, box, mask_input=mask_input, multimask_output=multimask
    )
    ms = (time.perf_counter() - start) * 1000
    return ms, masks[int(np.argmax(scores)) if multimask else 0]


async def measure(
    servers: list[Server], made: Scene, predictor: Any, planned: list[Trial]
) -> Sample:
    clients = [await Client.open(s, made.image_ids[0], made.token) for s in servers]
    sample = Sample()
    try:
        for trial in planned[:WARMUP]:
            for server, client in zip(servers, clients, strict=True):
                await server_trial(server, client, trial)
            reference_trial(predictor, trial)
        for i, trial in enumerate(planned[WARMUP:]):
            # Rotate the order so that no side always runs right after another.
            order = list(range(len(servers) + 1))
            order = order[i % len(order) :] + order[: i % len(order)]
            results: dict[int, tuple[float, np.ndarray, float]] = {}
            for k in order:
                if k == len(servers):
                    results[k] = (*reference_trial(predictor, trial), float("nan"))
                else:
                    results[k] = await server_trial(servers[k], clients[k], trial)
            want = results[len(servers)][1]
            sample.add(f"SamPredictor.predict|{trial.scenario}", results[len(servers)][0])
            for k, server in enumerate(servers):
                ms, got, cpu = results[k]
                key = f"{server.label}|{trial.scenario}"
                sample.add(key, ms, iou(got, want))
                sample.cpu_ms.setdefault(key, []).append(cpu)
    finally:
        for client in clients:
            await client.close()
    return sample


@dataclass(frozen=True)
class Variant:
    """Another server to measure beside this checkout's default one."""

    label: str
    tree: Path
    args: list[str]
    env: dict[str, str]


def variants() -> list[Variant]:
    """BENCH_COMPARE entries, `;`-separated: `label=tree[|uvicorn args[|NAME=value ...]]`."""
    found = []
    for item in filter(None, (os.environ.get("BENCH_COMPARE") or "").split(";")):
        label, _, rest = item.partition("=")
        tree, _, rest = rest.partition("|")
        args, _, env = rest.partition("|")
        pairs = dict(pair.split("=", 1) for pair in env.split())
        if "PYTHONPATH" in pairs:  # extra folders after the tree's own
            pairs["PYTHONPATH"] = f"{(REPO / tree.strip()).resolve()}:{pairs['PYTHONPATH']}"
        found.append(Variant(label.strip(), (REPO / tree.strip()).resolve(), args.split(), pairs))
    return found


def run() -> list[Table]:
    opts = options()
    made = scene(images=1)
    predictor = reference_predictor(made)
    count = WARMUP + (3 * 8 if opts.quick else 3 * 40)
    planned = trials(count, made.original_size[1])
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(live_server())]
        for v in variants():
            server = live_server(tree=v.tree, label=v.label, extra_args=v.args, env=v.env)
            servers.append(stack.enter_context(server))
        sample = asyncio.run(measure(servers, made, predictor, planned))
    return tables(sample, [s.label for s in servers])


def tables(sample: Sample, labels: list[str]) -> list[Table]:
    timing = Table(
        "Click to mask: WebSocket round trip vs SamPredictor.predict (vit_b, 1024x1024)",
        ["scenario", "who", *STAT_COLUMNS, "p50 / reference", "server CPU ms"],
    )
    agreement = Table(
        "Agreement with float32 SamPredictor (IoU of the masks)",
        ["scenario", "who", "n", "mean IoU", "min IoU"],
    )
    for scenario in SCENARIOS:
        reference = Stats.of(sample.times_ms[f"SamPredictor.predict|{scenario}"])
        for who in [*labels, "SamPredictor.predict"]:
            stats = Stats.of(sample.times_ms[f"{who}|{scenario}"])
            cpu = sample.cpu_ms.get(f"{who}|{scenario}")
            timing.add(
                scenario,
                who,
                *stats.cells(),
                f"{stats.p50 / reference.p50:.2f}",
                f"{np.mean(cpu):.1f}" if cpu else "",
            )
            if who in labels:
                values = sample.ious[f"{who}|{scenario}"]
                agreement.add(scenario, who, len(values), f"{np.mean(values):.4f}",
                              f"{np.min(values):.4f}")  # fmt: skip
    timing.notes += [
        f"targets (click): p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms, "
        "p50 at most half of SamPredictor.predict's",
        "maskroom's time is the whole round trip (client send to reply parsed); the "
        "reference's is the predict call alone, in the client process",
        "server CPU ms: the mean CPU time of the whole server process (all threads) per "
        "timed prompt, from /proc (10 ms ticks, averaged): steadier than wall time on a "
        "shared machine",
        load_note(),
    ]
    agreement.notes.append("target: mean IoU >= 0.98")
    return [timing, agreement]
