"""Consensus: an image's finished sets fused into its curated set.

Run by a reviewer (`consensus_run`, with other settings if they like, in the
request), or by the worker once the last set an image needs is finished
(`consensus_if_complete`, the body of tasks.py's task, which services.py
enqueues). The fusing is worker/quality/consensus.py; the curated instances
are written by annotations' consensus store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from backend.annotations.models import Assignment, Instance
from backend.annotations.services.consensus import FusedInstance, consensus_store
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.permissions import Action, project_require
from backend.quality.models import ImageConsensus, PairAgreement, SetScore
from backend.quality.selectors import (
    AGREEMENT_IOU,
    SetInstances,
    consensus_due,
    finished_sets,
    set_instances,
    sets_agreement,
)
from worker.quality.agreement import Labelled, pair_score
from worker.quality.consensus import METHODS, Method, consensus, default_quorum

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsensusOutcome:
    instances: list[Instance]
    record: ImageConsensus


def consensus_run(
    *,
    image: Image,
    user: AbstractBaseUser | None,
    method: str | None = None,
    iou: float | None = None,
    quorum: int | None = None,
    confirm: bool = False,
) -> ConsensusOutcome:
    """Fuse the image's finished sets into its curated set; the project's
    settings unless given. `user` None: the work queue's own run."""
    project = image.project
    if user is not None:
        project_require(project=project, user=user, action=Action.REVIEW)
    if image.gold:
        raise ServiceError("A gold image keeps its curated set: it is the truth, not fused.")
    method = method or project.consensus_method
    if method not in METHODS:
        raise ServiceError(f"method must be one of: {', '.join(METHODS)}.")
    iou = project.consensus_iou if iou is None else iou
    if not 0.05 <= iou <= 1:
        raise ServiceError("iou must be between 0.05 and 1.")
    sets = finished_sets(image=image)
    if not sets:
        raise ServiceError("No set of this image is finished yet: nothing to fuse.")
    need = quorum or project.quorum or default_quorum(len(sets))
    if not 1 <= need <= len(sets):
        raise ServiceError(f"quorum must be between 1 and the {len(sets)} finished sets.")
    by_set = set_instances(sets)
    fused = consensus(
        [by_set[a.pk].labelled for a in sets], height=image.height, width=image.width,
        threshold=iou, quorum=need, method=cast(Method, method),
    )  # fmt: skip
    stored = [
        FusedInstance(
            rle=f.rle,
            label_id=f.label,
            support=f.support,
            sources=[by_set[sets[s].pk].ids[i] for s, i in f.members],
        )
        for f in fused.instances
    ]
    agreement = sets_agreement(sets, by_set, iou)
    mean_f1 = agreement.mean_f1
    with transaction.atomic():
        made = consensus_store(image=image, fused=stored, user=user, confirm=confirm)
        disputed = bool(fused.disputed) or (mean_f1 is not None and mean_f1 < project.agreement_min)
        record, _ = ImageConsensus.objects.update_or_create(
            image=image,
            defaults={
                "method": method, "iou": iou, "quorum": need, "sets": len(sets),
                "instances": len(made), "disputed_clusters": len(fused.disputed),
                "mean_f1": mean_f1, "disputed": disputed, "computed_by": user,
                # A new consensus is a new question: whoever recomputes a
                # disputed image holds it; nobody has resolved it yet.
                "reviewer": user if disputed else None,
                "review_started_at": timezone.now() if disputed and user else None,
                "resolved_by": None, "resolved_at": None,
            },
        )  # fmt: skip
        _score_against(sets, by_set, [Labelled(i.rle, i.label_id) for i in made], "consensus")
        PairAgreement.objects.filter(image=image).delete()
        PairAgreement.objects.bulk_create(
            PairAgreement(image=image, a_id=p.a, b_id=p.b, f1=p.score.f1, pq=p.score.pq)
            for p in agreement.pairs
        )
    return ConsensusOutcome(made, record)


def _score_against(
    sets: list[Assignment],
    by_set: dict[int, SetInstances],
    truth: list[Labelled],
    what: str,
    threshold: float = AGREEMENT_IOU,
) -> None:
    """Each set's F1 and PQ against `truth`, stored as its score against `what`."""
    for assignment in sets:
        score = pair_score(truth, by_set[assignment.pk].labelled, threshold)
        SetScore.objects.update_or_create(
            assignment=assignment,
            defaults={f"f1_{what}": score.f1, f"pq_{what}": score.pq},
        )


def consensus_if_complete(*, image: Image) -> ConsensusOutcome | None:
    """Run the consensus once every set the image needs is finished (accepted,
    or submitted without review), where an image needs more than one set: the
    worker's task, checking again what held when it was enqueued. One run per
    image at a time (its row locked): two last sets finishing together enqueue
    two tasks, and the second finds the sets already fused and stops."""
    with transaction.atomic():
        list(Image.objects.select_for_update().filter(pk=image.pk).values_list("pk"))
        if not consensus_due(image=image) or _fused_since_finished(image):
            return None
        try:
            with transaction.atomic():
                return consensus_run(image=image, user=None)
        except ServiceError as refused:
            # e.g. consensus instances edited since: a reviewer decides.
            logger.info("consensus of image %s left to a reviewer: %s", image.pk, refused.message)
        except Exception:
            # The sets stay finished whatever happens here; a reviewer can run it again.
            logger.exception("consensus of image %s failed", image.pk)
    return None


def _fused_since_finished(image: Image) -> bool:
    """Whether the image's consensus was computed after its last set finished
    (by another task, or by a reviewer with their own settings)."""
    record = ImageConsensus.objects.filter(image=image).first()
    if record is None:
        return False
    sets = finished_sets(image=image)
    finished = [t for a in sets for t in (a.submitted_at, a.reviewed_at) if t is not None]
    return bool(finished) and record.computed_at >= max(finished)
