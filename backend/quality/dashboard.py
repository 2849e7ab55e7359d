"""The quality page's numbers: per annotator and per image, in a few queries."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db.models import Avg, Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncDate

from backend.annotations.models import Assignment, AssignmentComment, Instance
from backend.projects.models import Project
from backend.quality.models import ImageConsensus, PairAgreement

S = Assignment.Status
LOWEST_IMAGES = 100


@dataclass(frozen=True)
class AnnotatorRow:
    username: str
    submitted: int  # sets ever submitted
    accepted: int
    returned: int  # sets returned at least once
    instances: int  # accepted instances in their sets
    seconds_per_image: float | None
    prompts_per_instance: float | None
    f1_consensus: float | None
    pq_consensus: float | None
    f1_gold: float | None
    pq_gold: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


COLUMNS = tuple(AnnotatorRow.__dataclass_fields__)


def annotator_rows(*, project: Project) -> list[AnnotatorRow]:
    sets = Assignment.objects.filter(image__project=project, shared=False)
    returned = AssignmentComment.objects.filter(assignment=OuterRef("pk"))
    rows = (
        sets.values("annotator__username")
        .annotate(
            submitted=Count("pk", filter=Q(submitted_at__isnull=False)),
            accepted=Count("pk", filter=Q(status=S.ACCEPTED)),
            returned=Count("pk", filter=Exists(returned)),
            seconds=Sum("seconds", filter=Q(submitted_at__isnull=False)),
            prompts=Sum("prompts"),
            f1_consensus=Avg("score__f1_consensus"),
            pq_consensus=Avg("score__pq_consensus"),
            f1_gold=Avg("score__f1_gold"),
            pq_gold=Avg("score__pq_gold"),
        )
        .order_by("annotator__username")
    )
    instances = dict(
        Instance.objects.filter(assignment__in=sets, state=Instance.State.ACCEPTED)
        .values("assignment__annotator__username")
        .annotate(n=Count("pk"))
        .values_list("assignment__annotator__username", "n")
    )
    found = []
    for row in rows:
        name = row["annotator__username"]
        made = instances.get(name, 0)
        found.append(
            AnnotatorRow(
                username=name,
                submitted=row["submitted"],
                accepted=row["accepted"],
                returned=row["returned"],
                instances=made,
                seconds_per_image=(row["seconds"] or 0) / row["submitted"]
                if row["submitted"]
                else None,
                prompts_per_instance=(row["prompts"] or 0) / made if made else None,
                f1_consensus=row["f1_consensus"],
                pq_consensus=row["pq_consensus"],
                f1_gold=row["f1_gold"],
                pq_gold=row["pq_gold"],
            )
        )
    return found


def image_rows(*, project: Project) -> list[dict[str, object]]:
    """The images with a consensus, lowest agreement first (the disputed before the rest)."""
    records = (
        ImageConsensus.objects.filter(image__project=project)
        .select_related("image")
        .order_by("-disputed", "mean_f1", "image_id")[:LOWEST_IMAGES]
    )
    return [
        {
            "image": r.image_id,
            "name": r.image.name,
            "sets": r.sets,
            "mean_f1": r.mean_f1,
            "disputed": r.disputed,
            "disputed_clusters": r.disputed_clusters,
        }
        for r in records
    ]


def annotator_pairs(*, project: Project) -> list[dict[str, object]]:
    """Mean F1 of each pair of annotators over the images both did (from the
    pairs stored with each consensus), each pair once, names in order."""
    rows = (
        PairAgreement.objects.filter(image__project=project)
        .values_list("a__annotator__username", "b__annotator__username")
        .annotate(f1=Avg("f1"), pq=Avg("pq"), images=Count("pk"))
    )
    merged: dict[tuple[str, str], list[float]] = {}
    for a, b, f1, pq, images in rows:
        key = (a, b) if a <= b else (b, a)
        total = merged.setdefault(key, [0.0, 0.0, 0.0])
        total[0] += f1 * images
        total[1] += pq * images
        total[2] += images
    return [
        {"a": a, "b": b, "f1": f1 / n, "pq": pq / n, "images": int(n)}
        for (a, b), (f1, pq, n) in sorted(merged.items())
    ]


def throughput(*, project: Project) -> list[dict[str, object]]:
    """Sets submitted per day (UTC), oldest first."""
    rows = (
        Assignment.objects.filter(image__project=project, submitted_at__isnull=False, shared=False)
        .annotate(day=TruncDate("submitted_at"))
        .values("day")
        .annotate(sets=Count("pk"))
        .order_by("day")
    )
    return [{"day": r["day"].isoformat(), "sets": r["sets"]} for r in rows]
