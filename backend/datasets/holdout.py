"""Which curated images a training job learns from and which it (and an
evaluation of split "validation") validates on.

The project's dataset splits (backend/datasets/splits.py) decide where they
give both: images with curated instances in `train` learn, those in `val`
validate, `test` stays untouched. When the splits leave either side without
a curated image (a small project), about a fifth of the curated images
outside `test` (at least one image or stack) is held out here by a stable
hash of the split seed, so the next job holds out the same ones; `test`
stays untouched then too, unless fewer than two images or stacks would be
left (the job's split says so: source "held out, test included").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from backend.annotations.selectors import accepted_instances
from backend.common.errors import ServiceError
from backend.datasets.models import ImageSplit
from backend.datasets.splits import image_key, split_settings, splits_decide
from backend.images.models import Image
from backend.projects.models import Project

HELD_OUT = 0.2


@dataclass(frozen=True)
class TrainingSplit:
    train: list[int]
    val: list[int]
    source: str  # "splits", "held out" or "held out, test included"

    def as_json(self) -> dict[str, object]:
        return {"train": self.train, "val": self.val, "source": self.source}


def validation_split(*, project: Project) -> TrainingSplit:
    """ServiceError (400) when fewer than two images have curated instances."""
    curated = sorted(set(accepted_instances(project=project).values_list("image_id", flat=True)))
    if len(curated) < 2:
        raise ServiceError(
            "Training needs curated instances on at least two images: one to learn "
            f"from and one to validate on (this project has {len(curated)})."
        )
    splits_decide(project=project)
    split_of = dict(
        ImageSplit.objects.filter(image_id__in=curated).values_list("image_id", "split")
    )
    train = [pk for pk in curated if split_of.get(pk) == "train"]
    val = [pk for pk in curated if split_of.get(pk) == "val"]
    if train and val:
        return TrainingSplit(train, val, "splits")
    outside_test = [pk for pk in curated if split_of.get(pk) != "test"]
    if len(_groups(outside_test)) >= 2:
        return _held_out(project, outside_test, "held out")
    return _held_out(project, curated, "held out, test included")


def _groups(image_ids: list[int]) -> dict[str, list[int]]:
    """The images by image or stack (a stack's planes stay together)."""
    stacks = dict(Image.objects.filter(pk__in=image_ids).values_list("pk", "stack_id"))
    groups: dict[str, list[int]] = {}
    for pk in image_ids:
        groups.setdefault(image_key(pk, stacks[pk]), []).append(pk)
    return groups


def _held_out(project: Project, pool: list[int], source: str) -> TrainingSplit:
    """About a fifth of `pool` held out (at least one group, never the last)."""
    seed = split_settings(project).seed
    groups = _groups(pool)
    ranked = sorted(groups, key=lambda key: hashlib.sha256(f"{seed}:{key}:val".encode()).digest())
    wanted = max(1, math.ceil(HELD_OUT * len(pool)))
    val: list[int] = []
    for key in ranked[:-1]:  # the last group always trains
        if len(val) >= wanted:
            break
        val += groups[key]
    if not val:
        raise ServiceError("Training needs curated instances on at least two images or stacks.")
    return TrainingSplit(sorted(set(pool) - set(val)), sorted(val), source)
