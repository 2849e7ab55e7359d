"""Train / validation / test splits: each image's split is decided once, by
a hash of the project's seed and the image's key, against the project's
fractions, and stored; images added later are decided the same way, so the
earlier ones never move. Every plane of a stack has the stack's key, so a
stack is never split across. Changing the fractions or the seed decides
every image again except those set by hand."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from django.db import transaction

from backend.common.errors import ServiceError
from backend.datasets.models import ImageSplit, Split, SplitSettings
from backend.images.models import Image
from backend.projects.models import Project

SPLITS = [str(value) for value in Split.values]


def split_for(*, key: str, seed: int, fractions: tuple[float, float, float]) -> str:
    """The split a key falls in: a uniform number in [0, 1) from its hash."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    train, val, _ = fractions
    if u < train:
        return Split.TRAIN
    return Split.VAL if u < train + val else Split.TEST


def image_key(image_id: int, stack_id: int | None) -> str:
    return f"stack:{stack_id}" if stack_id is not None else f"image:{image_id}"


def split_settings(project: Project) -> SplitSettings:
    found, _ = SplitSettings.objects.get_or_create(project=project)
    return found


def splits_decide(*, project: Project) -> None:
    """Decide and store the split of every image that has none yet."""
    config = split_settings(project)
    fractions = (config.train, config.val, config.test)
    undecided = Image.objects.filter(project=project, split__isnull=True).values_list(
        "id", "stack_id"
    )
    rows = [
        ImageSplit(image_id=pk, split=split_for(key=image_key(pk, stack), seed=config.seed,
                                                fractions=fractions))
        for pk, stack in undecided.iterator(chunk_size=5000)
    ]  # fmt: skip
    ImageSplit.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)


def splits_summary(*, project: Project, image_ids: list[int] | None = None) -> dict[str, Any]:
    """Fractions, seed and counts; with `image_ids`, those images' splits too."""
    splits_decide(project=project)
    config = split_settings(project)
    counts = Counter(
        ImageSplit.objects.filter(image__project=project).values_list("split", flat=True)
    )
    by_hand = ImageSplit.objects.filter(image__project=project, by_hand=True).count()
    summary: dict[str, Any] = {
        "fractions": {"train": config.train, "val": config.val, "test": config.test},
        "seed": config.seed,
        "counts": {split: counts.get(split, 0) for split in SPLITS},
        "by_hand": by_hand,
    }
    if image_ids is not None:
        rows = ImageSplit.objects.filter(image__project=project, image_id__in=image_ids[:1000])
        summary["images"] = {str(pk): split for pk, split in rows.values_list("image_id", "split")}
    return summary


@transaction.atomic
def splits_change(
    *,
    project: Project,
    fractions: dict[str, float] | None = None,
    seed: int | None = None,
    images: dict[int, str] | None = None,
) -> None:
    """New fractions or seed decide every image again (but those set by hand);
    `images` sets single images by hand (a stack's planes move together)."""
    config = split_settings(project)
    if fractions is not None:
        _check_fractions(fractions)
        config.train, config.val, config.test = (float(fractions[s]) for s in SPLITS)
    if seed is not None:
        config.seed = seed
    if fractions is not None or seed is not None:
        config.save()
        ImageSplit.objects.filter(image__project=project, by_hand=False).delete()
    splits_decide(project=project)
    for image_id, split in (images or {}).items():
        _set_by_hand(project, image_id, split)


def _check_fractions(fractions: dict[str, float]) -> None:
    if set(fractions) != set(SPLITS):
        raise ServiceError(f"fractions must give train, val and test, not {sorted(fractions)}.")
    values = [fractions[s] for s in SPLITS]
    if any(not isinstance(v, int | float) or v < 0 for v in values):
        raise ServiceError("fractions must be numbers of at least 0.")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ServiceError(f"fractions must add up to 1, not {sum(values):g}.")


def _set_by_hand(project: Project, image_id: int, split: str) -> None:
    if split not in SPLITS:
        raise ServiceError(f"Image {image_id}: the split must be one of {', '.join(SPLITS)}.")
    image = Image.objects.filter(project=project, pk=image_id).first()
    if image is None:
        raise ServiceError(f"Image {image_id} is not in this project.")
    together = Image.objects.filter(stack_id=image.stack_id) if image.stack_id else [image]
    for member in together:
        ImageSplit.objects.update_or_create(
            image=member, defaults={"split": split, "by_hand": True}
        )
