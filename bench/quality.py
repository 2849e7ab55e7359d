"""Agreement and consensus on a crowded image: three sets of 2,000 instances
each (and, in the same run, of 200, so the ratio says how they grow).

The truth is a grid of round cells on a 1024 x 1024 image; the three raters
are the truth shifted by a pixel, the truth eroded by a pixel, and the
truth with a tenth of the cells missing and fifty cells added. Timed in
process (worker/quality, no database): the pairwise agreement of the
three sets, and the consensus by majority vote and by STAPLE. Each figure
is the best and the worst of REPEATS runs, with the peak of Python's
allocations during one run (tracemalloc).
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from itertools import combinations

import numpy as np
from scipy import ndimage

from bench.common import Table, options
from worker import rle
from worker.quality.agreement import Labelled, pair_score
from worker.quality.consensus import consensus

SIZE = 1024
COUNTS = (200, 2000)


def run() -> list[Table]:
    repeats = 1 if options().quick else 3
    measured = {n: _measure(n, repeats) for n in COUNTS}
    small, big = COUNTS
    table = Table(
        title=f"Agreement and consensus, three sets of {small:,} and of {big:,} instances",
        columns=[
            "step", f"best ms ({small:,})", f"worst ms ({small:,})", f"best ms ({big:,})",
            f"worst ms ({big:,})", "ratio", f"peak MiB ({big:,})",
        ],
    )  # fmt: skip
    for step in measured[big]:
        (a_best, a_worst, _), (b_best, b_worst, b_peak) = measured[small][step], measured[big][step]
        table.add(step, a_best, a_worst, b_best, b_worst, b_best / a_best, b_peak)
    table.notes.append(
        f"{SIZE} x {SIZE} image, in process; {repeats} runs each. The three pairs are "
        "compared by IoU on box-overlapping pairs and a Hungarian assignment per group."
    )
    return [table]


def _grid(count: int) -> list[np.ndarray]:
    side = int(np.ceil(np.sqrt(count)))
    step = SIZE // side
    radius = max(step // 2 - 2, 2)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    cells = []
    for n in range(count):
        cy, cx = (n // side) * step + step // 2, (n % side) * step + step // 2
        y0, y1, x0, x1 = cy - radius, cy + radius + 1, cx - radius, cx + radius + 1
        mask = np.zeros((SIZE, SIZE), dtype=bool)
        mask[y0:y1, x0:x1] = (yy[y0:y1, x0:x1] - cy) ** 2 + (
            xx[y0:y1, x0:x1] - cx
        ) ** 2 <= radius**2
        cells.append(mask)
    return cells


def _raters(count: int) -> list[list[Labelled]]:
    rng = random.Random(count)
    truth = _grid(count)
    shifted = [np.roll(m, 1, axis=1) for m in truth]
    eroded = [ndimage.binary_erosion(m) for m in truth]
    kept = [m for m in truth if rng.random() >= 0.1]
    added = [np.roll(m, 3, axis=0) for m in rng.sample(truth, 50)]
    return [
        [Labelled(rle.encode_crop(m, 0, 0, SIZE, SIZE), 1) for m in ms]
        for ms in (shifted, eroded, kept + added)
    ]


def _timed(work: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    times = []
    peak = 0.0
    for n in range(repeats):
        if n == 0:
            tracemalloc.start()
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
        if n == 0:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    return min(times), max(times), peak


def _measure(count: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    sets = _raters(count)
    return {
        "agreement, 3 pairs": _timed(
            lambda: [pair_score(a, b) for a, b in combinations(sets, 2)], repeats
        ),
        "consensus, majority vote": _timed(
            lambda: consensus(sets, height=SIZE, width=SIZE, method="majority"), repeats
        ),
        "consensus, STAPLE": _timed(
            lambda: consensus(sets, height=SIZE, width=SIZE, method="staple"), repeats
        ),
    }
