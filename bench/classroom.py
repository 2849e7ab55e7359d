"""A class opens an image at once: N annotators (BENCH_ANNOTATORS, default
20) connect to an image whose embedding the worker is finishing, and start
when it is ready (each within a second of it): each places objects of
three clicks (two positive, one negative, each refining the last, with the
previous mask fed back), then a reset, one click a second, for
BENCH_SECONDS (default 60).

Each scenario starts a fresh web server (nothing loaded, nothing cached), as
after a deploy or a restart, so the first clicks pay whatever a cold process
pays. The embeddings are on disk but marked running; once every annotator is
connected and told "running", they are marked ready in the database, and
the server's status watch tells the connections, which is when each starts.

Scenarios: everyone on one image; everyone on an image of their own (the
cache under pressure); twice as many on one image (where it saturates).
Reported: round trips over the whole run (p50, p99, worst), the first
click's, the worst 5-second window's p99, replies lost, out of order or in
error, the server's CPU and its memory (RSS) at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    STAT_COLUMNS,
    Scene,
    Server,
    Stats,
    Table,
    live_server,
    load_note,
    options,
    scene,
    ws_headers,
)
from bench.load import annotators

WINDOW_S = 5.0
TARGETS = "targets: p50 <= 40 ms, p99 <= 150 ms, none over 500 ms, no errors, lost or reordered"


@dataclass
class Run:
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at s, ms)
    first_ms: list[float] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    lost: int = 0
    out_of_order: int = 0

    def window_p99(self) -> float:
        windows: dict[int, list[float]] = {}
        for at, ms in self.latencies:
            windows.setdefault(int(at // WINDOW_S), []).append(ms)
        return max((Stats.of(v).p99 for v in windows.values() if v), default=math.nan)


def three_click_objects(seed: int, width: int, height: int) -> list[list[float] | None]:
    """Points to send, one a second: two positives and a negative per object,
    then None (a reset)."""
    rng = random.Random(seed)
    made: list[list[float] | None] = []
    while len(made) < 1000:
        x, y = rng.uniform(40, width - 40), rng.uniform(40, height - 40)
        made.append([x, y, 1])
        made.append([x + rng.uniform(-15, 15), y + rng.uniform(-15, 15), 1])
        made.append([x + rng.uniform(-40, 40), y + rng.uniform(-40, 40), 0])
        made.append(None)
    return made


async def annotator(
    server: Server, made: Scene, image_id: int, seed: int, seconds: float,
    connected: asyncio.Barrier, run: Run, epoch: list[float],
) -> None:  # fmt: skip
    from websockets.asyncio.client import connect

    connection = await connect(
        f"{server.url}/ws/images/{image_id}/",
        additional_headers=ws_headers(made.token, server.url),
        max_size=16 * 1024 * 1024, open_timeout=120, ping_interval=None,
    )  # fmt: skip
    ready = asyncio.Event()
    sent_at: dict[int, float] = {}
    expected = [1]

    async def read() -> None:
        async for raw in connection:
            reply = json.loads(raw)
            kind = reply.get("type")
            if kind == "status":
                if reply["embedding_status"] == "ready":
                    ready.set()
                continue
            if kind in ("presence", "instance", "instances"):
                continue
            rid = reply.get("request_id")
            if kind not in ("mask", "superseded"):
                run.errors += 1
            if rid != expected[0]:
                run.out_of_order += 1
            if isinstance(rid, int) and rid in sent_at:
                sent = sent_at.pop(rid)
                if kind == "mask":
                    ms = (time.perf_counter() - sent) * 1000
                    run.latencies.append((sent - epoch[0], ms))
                    if rid == 1:
                        run.first_ms.append(ms)
                expected[0] = rid + 1

    reader = asyncio.create_task(read())
    await connected.wait()
    try:
        await asyncio.wait_for(ready.wait(), timeout=120)
        # People start within a second of each other, not on the same millisecond.
        start = time.perf_counter() + random.Random(seed).random()
        rid, step = 0, 0
        for point in three_click_objects(seed, made.original_size[1], made.original_size[0]):
            if point is None:
                await connection.send(json.dumps({"type": "reset"}))
                continue
            await asyncio.sleep(max(0.0, start + step - time.perf_counter()))
            if time.perf_counter() - start >= seconds:
                break
            rid += 1
            sent_at[rid] = time.perf_counter()
            message = {"type": "prompt", "request_id": rid, "points": [point], "box": None}
            await connection.send(json.dumps(message))
            run.sent += 1
            step += 1
        deadline = time.perf_counter() + 15
        while sent_at and time.perf_counter() < deadline and not reader.done():
            await asyncio.sleep(0.05)
    finally:
        run.lost += len(sent_at)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await connection.close()


async def classroom(
    server: Server, made: Scene, images: list[int], count: int, seconds: float
) -> Run:
    from asgiref.sync import sync_to_async

    from backend.segmentation.models import Embedding

    run = Run()
    epoch = [time.perf_counter()]
    connected = asyncio.Barrier(count + 1)
    mark = sync_to_async(
        lambda status: Embedding.objects.filter(image_id__in=images).update(status=status)
    )
    await mark(Embedding.Status.RUNNING)
    people = [
        asyncio.create_task(
            annotator(server, made, images[i % len(images)], i, seconds, connected, run, epoch)
        )
        for i in range(count)
    ]
    await connected.wait()  # everyone is on the image, waiting
    await asyncio.sleep(1.0)
    epoch[0] = time.perf_counter()
    await mark(Embedding.Status.READY)  # the worker finished: the class starts
    await asyncio.gather(*people)
    return run


def rss_mib(pid: int) -> float:
    from pathlib import Path

    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def engine_loaded(server: Server, key: str, timeout_s: float = 180.0) -> float:
    """Seconds until the server's health says it has loaded `key` (its startup warm-up)."""
    start = time.perf_counter()
    url = server.url.replace("ws://", "http://", 1) + "/api/health/"
    while time.perf_counter() - start < timeout_s:
        if key in _health(url).get("engines_loaded", []):
            return time.perf_counter() - start
        time.sleep(0.2)
    raise RuntimeError(f"the server did not load {key} within {timeout_s:g} s")


def _health(url: str) -> dict[str, Any]:
    """The health report, also when it says 503 (no worker runs beside the benchmark)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as refused:
        return dict(json.loads(refused.read() or b"{}"))
    except OSError:
        return {}


def run() -> list[Table]:
    opts = options()
    count = annotators()
    made = scene(images=count)
    table = Table(
        f"A class arrives at once on a just-embedded image, three-click objects, "
        f"one click a second for {opts.seconds:g} s, a fresh server each",
        ["server", "annotators", "images", *STAT_COLUMNS, "first p50", "first worst",
         "worst 5 s p99", "clicks", "errors", "lost", "reordered", "CPU %", "RSS MiB"],
    )  # fmt: skip
    plans = [("warm", count, 1), ("warm", count, count), ("warm", 2 * count, 1), ("cold", count, 1)]
    loads: list[float] = []
    for state, people, images in plans:
        ids = made.image_ids[:images]
        with live_server() as server:
            if state == "warm":  # up for a while: its startup loaded the engine
                loads.append(engine_loaded(server, made.engine_key))
            cpu, wall = server.cpu_ms(), time.perf_counter()
            result = asyncio.run(classroom(server, made, ids, people, opts.seconds))
            busy = (server.cpu_ms() - cpu) / ((time.perf_counter() - wall) * 1000) * 100
            times = [ms for _, ms in result.latencies]
            first = Stats.of(result.first_ms)
            table.add(
                state, people, images, *Stats.of(times).cells(), f"{first.p50:.1f}",
                f"{first.max:.1f}", f"{result.window_p99():.1f}", result.sent, result.errors,
                result.lost, result.out_of_order, f"{busy:.0f}",
                f"{rss_mib(server.process.pid):.0f}",
            )  # fmt: skip
    table.notes += [
        TARGETS,
        "warm: the class arrives once the server's startup has loaded the engine "
        f"(it took {min(loads, default=math.nan):.1f} to {max(loads, default=math.nan):.1f} s "
        "after the server answered); cold: the class arrives as the server starts",
        load_note(),
    ]
    return [table]
