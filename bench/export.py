"""Dataset exports of big projects (issue 16): the export job's whole body
(`backend.datasets.run.export_run`, what the worker runs), on projects of
1,000 and 10,000 images of 512 x 512 with 20 curated instances each (20,000
and 200,000), in the benchmark's throwaway SQLite database.

Timed per format: COCO (RLE), label images, and Cellpose folders (the
images written too, as TIFF from the stored planes). Memory: the process's
resident set sampled every 20 ms during the export, its peak above what
it held before (the export's own growth). The ratio columns compare the
big project's time with the small one's in the same run (it should grow
10x with the project); memory should not grow with it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from bench.common import Table, django_ready, load_note, options
from worker import rle as rle_codec

SIDE = 512
PER_IMAGE = 20
FORMATS = (("coco", False), ("labels", False), ("cellpose", True))
COLUMNS = ["format", "images", "instances", "seconds", "images / s", "time ratio", "zip MiB",
           "RSS before MiB", "peak RSS MiB", "peak growth MiB"]  # fmt: skip


def run() -> list[Table]:
    django_ready()
    quick = options().quick
    sizes = (100, 1000) if quick else (1000, 10000)
    projects = {n: _project(n) for n in sizes}
    table = Table(
        title="Exporting a project: the whole job, by format and size",
        columns=COLUMNS,
    )
    for fmt, images in FORMATS:
        measured = {n: _export(projects[n], fmt, images) for n in sizes}
        small = measured[sizes[0]]
        for n in sizes:
            seconds, size, before, peak = measured[n]
            table.add(fmt + (" (+ images)" if images else ""), f"{n:,}", f"{n * PER_IMAGE:,}",
                      f"{seconds:.1f}", f"{n / seconds:.0f}", f"{seconds / small[0]:.1f}",
                      f"{size / 2**20:.1f}", f"{before / 2**20:.0f}", f"{peak / 2**20:.0f}",
                      f"{(peak - before) / 2**20:.1f}")  # fmt: skip
    table.notes.append(
        f"{SIDE} x {SIDE} uint8 images, {PER_IMAGE} round instances each, one history row each; "
        "SQLite; peak growth = the highest resident set during the export minus the one before."
    )
    table.notes.append(load_note())
    return [table]


def _project(images: int) -> Any:
    """A project of `images` images sharing one planes file, each with
    PER_IMAGE curated instances and their creation in the history."""
    from django.contrib.auth.models import User

    from backend.annotations.models import Instance, InstanceHistory
    from backend.images.models import Image
    from backend.projects.services import project_create

    owner, _ = User.objects.get_or_create(username="export-owner")
    project = project_create(user=owner, name=f"Export {images}", labels=["nucleus", "cell"])
    labels = list(project.labels.all())
    planes = _planes_file()
    rows = [
        Image(project=project, name=f"plate1_well{k:05d}.tif", original_path=planes,
              planes_path=planes, display_path=planes, format="tiff", width=SIDE, height=SIDE,
              channels=1, dtype="uint8", uploaded_by=owner)
        for k in range(images)
    ]  # fmt: skip
    made = Image.objects.bulk_create(rows, batch_size=1000)
    shapes = _shapes(PER_IMAGE)
    for start in range(0, len(made), 500):
        instances = [
            Instance(image=image, label=labels[k % 2], rle=mask_rle, area=area, bbox=bbox,
                     author=owner)
            for image in made[start : start + 500]
            for k, (mask_rle, area, bbox) in enumerate(shapes)
        ]  # fmt: skip
        Instance.objects.bulk_create(instances, batch_size=2000)
        history = [
            InstanceHistory(instance=i, version=1, action="create", user=owner,
                            label=i.label, label_name=i.label.name, rle=i.rle)
            for i in instances
        ]  # fmt: skip
        InstanceHistory.objects.bulk_create(history, batch_size=2000)
    return project


def _planes_file() -> str:
    from django.conf import settings

    relative = "bench/planes.npy"
    path = settings.MEDIA_ROOT / relative
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        np.save(path, rng.integers(0, 255, size=(1, SIDE, SIDE), dtype=np.uint8))
    return relative


def _shapes(count: int) -> list[tuple[dict[str, Any], int, list[int]]]:
    """`count` round objects on a grid, as (RLE, area, bbox)."""
    rng = np.random.default_rng(1)
    found = []
    step = SIDE // 5
    for k in range(count):
        cy, cx = step // 2 + step * (k // 5), step // 2 + step * (k % 5)
        radius = int(rng.integers(8, step // 2 - 2))
        y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
        disc = x * x + y * y <= radius * radius
        mask_rle = rle_codec.encode_crop(disc, cx - radius, cy - radius, SIDE, SIDE)
        area, bbox = rle_codec.area_and_bbox(mask_rle)
        found.append((mask_rle, area, bbox))
    return found


def _export(project: Any, fmt: str, images: bool) -> tuple[float, int, int, int]:
    """(seconds, zip bytes, resident bytes before, peak resident bytes) of one export."""
    from backend.datasets.models import Export
    from backend.datasets.run import export_run

    owner = project.created_by
    options_ = {"images": images, "polygons": False, "split": "all"}
    export = Export.objects.create(project=project, created_by=owner, format=fmt, options=options_)
    sampler = _RssSampler()
    start = time.perf_counter()
    with sampler:
        export_run(export_id=export.pk)
    seconds = time.perf_counter() - start
    export.refresh_from_db()
    if export.status != "done":
        raise RuntimeError(f"export {fmt} failed: {export.error}")
    size = export.path.stat().st_size
    export.path.unlink()
    return seconds, size, sampler.before, sampler.peak


class _RssSampler:
    """The process's resident set every 20 ms while inside."""

    def __init__(self) -> None:
        self.before = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> _RssSampler:
        self.before = self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
