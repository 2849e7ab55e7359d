"""Many annotators at once: N WebSocket connections (default 20), each sending
one prompt a second for BENCH_SECONDS (default 60, `--seconds`), starting at
a random moment of the first second, on as many images or on one.

Each annotator works as a person does: an object is a click (now and then a
box), refined by one or two more clicks, then a reset and the next object.
Prompts go out on schedule whether or not the last reply has come (open
loop), and a reader checks that every reply comes, in order: a lost or
reordered reply, or an error message, is counted, never hidden.

BENCH_COMPARE variants (see bench/click.py) run after the default server,
one at a time, with the same schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from bench.click import variants
from bench.common import (
    STAT_COLUMNS,
    Client,
    Scene,
    Server,
    Stats,
    Table,
    live_server,
    load_note,
    options,
    scene,
)

TARGET_P99_MS = 150.0
DRAIN_SECONDS = 15.0


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    out_of_order: int = 0
    lost: int = 0
    superseded: int = 0  # merged into a later decode: answered, no mask of its own


def annotator_prompts(seed: int, width: int, height: int) -> list[dict[str, object] | None]:
    """An endless-enough list of prompts; None stands for a reset before the next."""
    rng = random.Random(seed)
    made: list[dict[str, object] | None] = []
    while len(made) < 1000:
        x, y = rng.uniform(8, width - 8), rng.uniform(8, height - 8)
        if rng.random() < 0.2:
            w, h = rng.uniform(30, 200), rng.uniform(30, 200)
            made.append(
                {"points": [], "box": [x, y, min(x + w, width - 1), min(y + h, height - 1)]}
            )
        else:
            made.append({"points": [[x, y, 1]], "box": None})
        for _ in range(rng.randint(0, 2)):
            px = min(max(x + rng.uniform(-60, 60), 0), width - 1)
            py = min(max(y + rng.uniform(-60, 60), 0), height - 1)
            made.append({"points": [[px, py, rng.randint(0, 1)]], "box": None})
        made.append(None)
    return made


async def annotator(
    server: Server, made: Scene, image_id: int, seed: int, seconds: float, tally: Tally
) -> None:
    client = await Client.open(server, image_id, made.token)
    sent_at: dict[int, float] = {}
    expected = [1]

    async def read() -> None:
        while True:
            reply = await client.receive()
            rid = reply.get("request_id")
            kind = reply.get("type")
            if kind == "superseded":
                tally.superseded += 1
            elif kind != "mask":
                tally.errors += 1
            if rid != expected[0]:
                tally.out_of_order += 1
            if isinstance(rid, int) and rid in sent_at:
                sent = sent_at.pop(rid)
                if kind == "mask":
                    tally.latencies_ms.append((time.perf_counter() - sent) * 1000)
                expected[0] = rid + 1

    reader = asyncio.create_task(read())
    rng = random.Random(seed)
    start = time.perf_counter() + rng.random()
    prompts = annotator_prompts(seed, made.original_size[1], made.original_size[0])
    rid, step = 0, 0
    try:
        for message in prompts:
            if message is None:
                await client.reset()
                continue
            await asyncio.sleep(max(0.0, start + step - time.perf_counter()))
            if time.perf_counter() - start >= seconds:
                break
            rid += 1
            sent_at[rid] = time.perf_counter()
            await client.send({"type": "prompt", "request_id": rid, **message})
            tally.sent += 1
            step += 1
        deadline = time.perf_counter() + DRAIN_SECONDS
        while sent_at and time.perf_counter() < deadline and not reader.done():
            await asyncio.sleep(0.05)
    except ConnectionClosed:
        tally.errors += 1  # the connection broke: counted, and what it had not answered is lost
    finally:
        tally.lost += len(sent_at)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        with contextlib.suppress(ConnectionClosed):
            await client.close()


async def crowd(server: Server, made: Scene, image_ids: list[int], seconds: float) -> Tally:
    tally = Tally()
    count = annotators()
    await asyncio.gather(
        *(
            annotator(
                server, made, image_ids[i % len(image_ids)], seed=i, seconds=seconds, tally=tally
            )
            for i in range(count)
        )
    )
    return tally


def annotators() -> int:
    return int(os.environ.get("BENCH_ANNOTATORS") or 20)


def run() -> list[Table]:
    opts = options()
    count = annotators()
    made = scene(images=count)
    table = Table(
        f"{count} annotators, one prompt a second each for {opts.seconds:g} s (round trip)",
        ["server", "images", *STAT_COLUMNS, "prompts", "superseded", "errors", "lost",
         "out of order", "server CPU %"],
    )  # fmt: skip
    plans = [("maskroom", live_server())]
    plans += [(v.label, live_server(tree=v.tree, label=v.label, extra_args=v.args, env=v.env))
              for v in variants()]  # fmt: skip
    for label, server_context in plans:
        with server_context as server:
            for images in (made.image_ids[:count], made.image_ids[:1]):
                asyncio.run(warm_up(server, made, images))
                cpu, wall = server.cpu_ms(), time.perf_counter()
                tally = asyncio.run(crowd(server, made, images, opts.seconds))
                busy = (server.cpu_ms() - cpu) / ((time.perf_counter() - wall) * 1000) * 100
                table.add(
                    label,
                    len(images),
                    *Stats.of(tally.latencies_ms).cells(),
                    tally.sent,
                    tally.superseded,
                    tally.errors,
                    tally.lost,
                    tally.out_of_order,
                    f"{busy:.0f}",
                )
    table.notes += [
        f"target: p99 <= {TARGET_P99_MS:g} ms with no errors, lost or reordered replies",
        "superseded: prompts sent while the connection's earlier ones waited, answered "
        "by the mask of one decode with them (docs/api.md)",
        "server CPU %: the server process's CPU time over the run's wall time "
        f"({len(os.sched_getaffinity(0))} cores = {100 * len(os.sched_getaffinity(0))} %)",
        load_note(),
    ]
    return [table]


async def warm_up(server: Server, made: Scene, image_ids: list[int]) -> None:
    """One click per image first, so that the run measures cached embeddings."""
    for image_id in dict.fromkeys(image_ids):
        client = await Client.open(server, image_id, made.token)
        await client.prompt([[100.0, 100.0, 1]])
        await client.close()
