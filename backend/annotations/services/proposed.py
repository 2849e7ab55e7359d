"""Storing automatic proposals: one image's proposals as Instance rows in the
"proposed" state, authorless, in place of its previous untouched proposals
(one that someone edited stays, and counts as curated).

Curated instances win: an accepted instance is never changed or deleted
here, a proposal more than half covered by accepted instances is dropped,
and accepted pixels are cut out of the others
(worker.proposals.pipeline.exclude_curated). That check reads the accepted
instances inside the transaction that writes, with the image row locked, so
an instance accepted meanwhile is respected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.db import transaction
from django.db.models import Q
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance, Origin
from backend.common.errors import ServiceError
from backend.common.image_events import publish
from backend.images.models import Image
from backend.projects.models import Label
from worker import rle
from worker.engines.base import MaskResult
from worker.proposals.pipeline import exclude_curated

MAX_COVERED_BY_CURATED = 0.5  # a proposal more covered than this duplicates curated work


@transaction.atomic
def proposed_instances_replace(
    *, image: Image, label: Label, masks: Sequence[MaskResult], min_area: int = 1
) -> int:
    """Store `masks` (image frame) as the image's proposed instances, in place
    of its previous proposals, minus what curated instances already hold."""
    if label.project_id != image.project_id:
        raise ServiceError("The label belongs to another project.")
    if Image.objects.select_for_update().filter(pk=image.pk).first() is None:
        return 0  # deleted meanwhile
    curated = _curated_union(image)
    kept = exclude_curated(masks, curated, max_covered=MAX_COVERED_BY_CURATED, min_area=min_area)
    # A proposal someone edited (its version moved on) is kept, and counts as
    # curated below: a re-run never takes away work.
    # People's sets keep the copies they were given; only the curated set's change.
    Instance.objects.filter(
        image=image, assignment=None, state=Instance.State.PROPOSED, version=1
    ).delete()
    rows = []
    for mask in kept:
        encoded = rle.encode_crop(mask.mask_crop, mask.x0, mask.y0, image.height, image.width)
        area, bbox = rle.area_and_bbox(encoded)
        rows.append(
            Instance(
                image=image,
                label=label,
                rle=encoded,
                area=area,
                bbox=bbox,
                state=Instance.State.PROPOSED,
                author=None,
                origin=Origin.PROPOSAL,
            )
        )
    Instance.objects.bulk_create(rows)
    publish(image.pk, {"kind": "instances", "assignment": None})  # the open editors reload
    return len(rows)


def _curated_union(image: Image) -> np.ndarray:
    """The bool (H, W) union of the image's accepted instances and edited proposals."""
    encoded = [
        {"size": [image.height, image.width], "counts": counts.encode("ascii")}
        for counts in Instance.objects.filter(
            Q(state=Instance.State.ACCEPTED) | Q(state=Instance.State.PROPOSED, version__gt=1),
            image=image,
            assignment=None,
        ).values_list("rle__counts", flat=True)
    ]
    if not encoded:
        return np.zeros((image.height, image.width), dtype=bool)
    merged = coco_mask.merge(encoded, intersect=0)
    return rle.decode({"size": [image.height, image.width], "counts": merged["counts"]})
