"""Reads for engine evaluations: which engine a name means, past runs, and
the one JSON shape the API and `evaluate_engine --json` both print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from backend.evaluations.models import EngineEvaluation
from backend.projects.access import visible_or_404
from backend.projects.models import Project

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

# The metrics of a run, in the order they are shown (see worker/evaluation.summarize).
METRIC_KEYS = (
    "images",
    "noc85",
    "noc90",
    "miou_at_1",
    "miou_at_3",
    "miou_at_5",
    "never_90_share",
    "box_iou",
    "proposal_f1",
    "proposal_pq",
    "max_clicks",
    "seconds",
)


def evaluation_for_user(user: AnyUser, evaluation_id: int) -> EngineEvaluation:
    objects = EngineEvaluation.objects.select_related("project", "created_by")
    found: EngineEvaluation = visible_or_404(user, objects, evaluation_id, via="project",
                                             what="evaluation")  # fmt: skip
    return found


def evaluation_list(*, project: Project) -> QuerySet[EngineEvaluation]:
    """The project's evaluations, newest first."""
    return EngineEvaluation.objects.filter(project=project).order_by("-created_at", "-id")


def evaluation_summary(evaluation: EngineEvaluation) -> dict[str, Any]:
    """{model, engine_key, objects, images, noc85, ..., seconds}; a metric the
    run did not record is None."""
    summary: dict[str, Any] = {
        "model": evaluation.model_name,
        "engine_key": evaluation.engine_key,
        "objects": evaluation.object_count,
    }
    for key in METRIC_KEYS:
        summary[key] = evaluation.metrics.get(key)
    return summary
