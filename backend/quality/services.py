"""Quality writes when a set finishes: a gold image's set is scored against
the truth at once; an image whose last needed set is finished has its
consensus enqueued for the worker (tasks.py runs run.py's
`consensus_if_complete`), since fusing and storing thousands of instances
takes seconds (docs/benchmarks.md)."""

from __future__ import annotations

import logging

from django.db import transaction

from backend.annotations.models import Assignment, Instance
from backend.images.models import Image
from backend.quality.models import SetScore
from backend.quality.selectors import AGREEMENT_IOU, consensus_due, set_instances
from backend.quality.tasks import consensus_image
from worker.quality.agreement import Labelled, PairScore, pair_score

logger = logging.getLogger(__name__)


def consensus_when_complete(*, image: Image) -> bool:
    """Enqueue the image's consensus after the commit when every set it needs
    is finished; whether it was (to be) enqueued."""
    if not consensus_due(image=image):
        return False
    image_id = image.pk
    transaction.on_commit(lambda: _enqueue(image_id))
    return True


def _enqueue(image_id: int) -> None:
    try:
        consensus_image.delay(image_id)
    except Exception:
        # Never run it inline: the request would take seconds. The image
        # stays without consensus until a reviewer runs it
        # (POST /api/images/{id}/consensus/, or Recompute in the editor).
        logger.exception("could not enqueue the consensus of image %s", image_id)


def gold_score(*, assignment: Assignment) -> PairScore | None:
    """Score a finished set of a gold image against the image's curated set (the
    truth) and keep it; None when the image is not gold."""
    image = assignment.image
    if not image.gold:
        return None
    truth = [
        Labelled(rle, label_id)
        for rle, label_id in Instance.objects.filter(
            image=image, assignment=None, state=Instance.State.ACCEPTED
        ).values_list("rle", "label_id")
    ]
    by_set = set_instances([assignment])
    score = pair_score(truth, by_set[assignment.pk].labelled, AGREEMENT_IOU)
    SetScore.objects.update_or_create(
        assignment=assignment, defaults={"f1_gold": score.f1, "pq_gold": score.pq}
    )
    return score
