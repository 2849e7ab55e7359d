"""Reads for quality control: how the finished sets of an image agree."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from backend.annotations.models import Assignment, Instance
from backend.images.models import Image
from backend.quality.models import ImageConsensus, SetScore
from worker.quality.agreement import Labelled, PairScore, pair_score

S = Assignment.Status
AGREEMENT_IOU = 0.5


@dataclass(frozen=True)
class Pair:
    a: int  # assignment ids
    b: int
    score: PairScore


@dataclass(frozen=True)
class Agreement:
    sets: list[Assignment]
    pairs: list[Pair]

    @property
    def mean_f1(self) -> float | None:
        return sum(p.score.f1 for p in self.pairs) / len(self.pairs) if self.pairs else None


def finished_sets(*, image: Image) -> list[Assignment]:
    """The image's sets that count: submitted or accepted (not shared with the curated set)."""
    return list(
        Assignment.objects.filter(image=image, shared=False, status__in=(S.SUBMITTED, S.ACCEPTED))
        .select_related("annotator")
        .order_by("id")
    )


def consensus_due(*, image: Image) -> bool:
    """Whether every set the image needs is finished (accepted, or submitted
    where the project has no review), where it needs more than one set and
    is not gold: then its sets are fused into its curated set."""
    project = image.project
    if project.overlap < 2 or image.gold:
        return False
    finished = (S.ACCEPTED,) if project.review else (S.ACCEPTED, S.SUBMITTED)
    done = Assignment.objects.filter(image=image, shared=False, status__in=finished).count()
    return done >= project.overlap


@dataclass
class SetInstances:
    ids: list[int]
    labelled: list[Labelled]


def set_instances(assignments: list[Assignment]) -> dict[int, SetInstances]:
    """Each set's accepted instances (proposals nobody accepted are not anyone's
    answer), oldest first, in one query."""
    found = {a.pk: SetInstances([], []) for a in assignments}
    rows = (
        Instance.objects.filter(assignment__in=assignments, state=Instance.State.ACCEPTED)
        .order_by("id")
        .values_list("assignment_id", "id", "rle", "label_id")
    )
    for assignment_id, pk, rle, label_id in rows:
        found[assignment_id].ids.append(pk)
        found[assignment_id].labelled.append(Labelled(rle, label_id))
    return found


def image_agreement(*, image: Image, threshold: float = AGREEMENT_IOU) -> Agreement:
    """Every pair of the image's finished sets, scored (the earlier set as reference)."""
    sets = finished_sets(image=image)
    return sets_agreement(sets, set_instances(sets), threshold)


def sets_agreement(
    sets: list[Assignment], instances: dict[int, SetInstances], threshold: float = AGREEMENT_IOU
) -> Agreement:
    """`image_agreement` of sets already read (the consensus reads them once)."""
    pairs = [
        Pair(a.pk, b.pk, pair_score(instances[a.pk].labelled, instances[b.pk].labelled, threshold))
        for a, b in combinations(sets, 2)
    ]
    return Agreement(sets, pairs)


def gold_feedback(*, assignment: Assignment) -> dict[str, float] | None:
    """A finished gold set's score, for its annotator, where the project gives
    feedback (a course); None otherwise (gold images look like any other)."""
    image = assignment.image
    if not (image.gold and image.project.feedback):
        return None
    if assignment.status not in (S.SUBMITTED, S.ACCEPTED):
        return None
    score = SetScore.objects.filter(assignment=assignment).first()
    if score is None or score.f1_gold is None or score.pq_gold is None:
        return None
    return {"f1": score.f1_gold, "pq": score.pq_gold}


def consensus_record(*, image: Image) -> ImageConsensus | None:
    return (
        ImageConsensus.objects.filter(image=image)
        .select_related("computed_by", "reviewer", "resolved_by")
        .first()
    )


def gold_reference(*, assignment: Assignment) -> list[Instance] | None:
    """A finished gold set's reference outlines (the image's curated set),
    shown with its score where the project gives feedback; None otherwise."""
    if gold_feedback(assignment=assignment) is None:
        return None
    return list(
        Instance.objects.filter(
            image=assignment.image_id, assignment=None, state=Instance.State.ACCEPTED
        )
        .select_related("label")
        .order_by("id")
    )
