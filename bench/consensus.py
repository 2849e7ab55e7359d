"""The consensus task on the database: an image with three finished sets of
2,000 instances each (bench/quality.py's raters), fused and stored by the
worker's task as the work queue enqueues it (`quality.consensus_image`).

In the benchmark's throwaway database (SQLite, as `make run` has it), each
run gets a fresh image whose three sets are written beforehand (untimed),
so every run stores its consensus into an empty curated set. Timed: the
whole task (reading 3 x 2,000 instances, agreement, fusing, storing 2,000
curated instances with their history, the set scores and pair agreements)
with majority vote and with STAPLE; and apart, `consensus_store` alone
(the fused instances computed beforehand). Median and worst of REPEATS runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from statistics import median
from typing import Any

from bench.common import Table, django_ready, options
from bench.quality import SIZE, _raters
from worker import rle as rle_codec
from worker.quality.agreement import Labelled
from worker.quality.consensus import Consensus, consensus

COUNT = 2000


def run() -> list[Table]:
    django_ready()
    repeats = 1 if options().quick else 5
    raters = _raters(COUNT)
    world = _World.make()
    table = Table(
        title=f"The consensus task on the database, three sets of {COUNT:,} instances",
        columns=["step", "median ms", "worst ms", "runs"],
    )
    for method in ("majority", "staple"):
        times = _repeat(partial(_task_once, world, raters, method), repeats)
        table.add(f"whole task, {method}", median(times), max(times), len(times))
    fused = consensus(raters, height=SIZE, width=SIZE, method="majority")
    times = _repeat(partial(_store_once, world, raters, fused), repeats)
    table.add(f"consensus_store alone ({COUNT:,} curated)", median(times), max(times), len(times))
    table.notes.append(
        f"SQLite, {SIZE} x {SIZE} image, a fresh image per run (an empty curated set); "
        "the whole task is `consensus_image.run(image_id)`, what the worker executes."
    )
    return [table]


def _repeat(once: Callable[[], float], repeats: int) -> list[float]:
    return [once() for _ in range(repeats)]


class _World:
    """An owner, three annotators and one project per consensus method."""

    def __init__(self, owner: Any, people: list[Any], projects: dict[str, Any]) -> None:
        self.owner, self.people, self.projects = owner, people, projects
        self.made = 0

    @classmethod
    def make(cls) -> _World:
        from django.contrib.auth.models import User

        from backend.projects.services import project_create

        owner = User.objects.create_user("consensus-owner", password="bench-password-1")
        people = [User.objects.create_user(f"rater{n}", password="!") for n in range(3)]
        projects = {}
        for method in ("majority", "staple"):
            project = project_create(user=owner, name=f"Crowded {method}", labels=["cell"])
            project.overlap, project.review, project.consensus_method = 3, False, method
            project.save(update_fields=["overlap", "review", "consensus_method"])
            projects[method] = project
        return cls(owner, people, projects)

    def image(self, method: str, raters: list[list[Labelled]]) -> tuple[Any, list[list[int]]]:
        """A fresh image of the method's project with the three sets submitted;
        the ids of each set's instances, in the raters' order."""
        from backend.annotations.models import Assignment, Instance
        from backend.images.models import Image

        project = self.projects[method]
        label = project.labels.get()
        self.made += 1
        image = Image.objects.create(
            project=project,
            name=f"crowded-{self.made}.tif",
            original_path="x",
            planes_path="x",
            display_path="x",
            format="tiff",
            width=SIZE,
            height=SIZE,
            dtype="uint16",
            uploaded_by=self.owner,
        )
        ids = []
        for person, labelled in zip(self.people, raters, strict=True):
            assignment = Assignment.objects.create(
                image=image, annotator=person, status=Assignment.Status.SUBMITTED
            )
            rows = []
            for item in labelled:
                area, bbox = rle_codec.area_and_bbox(item.rle)
                rows.append(
                    Instance(
                        image=image,
                        label=label,
                        rle=item.rle,
                        area=area,
                        bbox=bbox,
                        author=person,
                        assignment=assignment,
                    )
                )
            ids.append([i.pk for i in Instance.objects.bulk_create(rows, batch_size=500)])
        return image, ids


def _task_once(world: _World, raters: list[list[Labelled]], method: str) -> float:
    from backend.quality.models import ImageConsensus
    from backend.quality.tasks import consensus_image

    image, _ = world.image(method, raters)
    start = time.perf_counter()
    consensus_image.run(image.pk)
    elapsed = (time.perf_counter() - start) * 1000
    record = ImageConsensus.objects.get(image=image)  # it ran, and stored
    assert record.instances > 0.8 * COUNT, record.instances
    return elapsed


def _store_once(world: _World, raters: list[list[Labelled]], fused: Consensus) -> float:
    from backend.annotations.services.consensus import FusedInstance, consensus_store

    image, ids = world.image("majority", raters)
    label = image.project.labels.get()
    items = [
        FusedInstance(
            rle=f.rle,
            label_id=label.pk,
            support=f.support,
            sources=[ids[s][i] for s, i in f.members],
        )
        for f in fused.instances
    ]
    start = time.perf_counter()
    made = consensus_store(image=image, fused=items, user=None)
    elapsed = (time.perf_counter() - start) * 1000
    assert len(made) == len(items)
    return elapsed
