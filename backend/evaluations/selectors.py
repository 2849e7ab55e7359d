"""Reads for engine evaluations: which engine a name means, past runs, and
the one JSON shape the API and `evaluate_engine --json` both print."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from backend.evaluations.models import EngineEvaluation
from backend.projects.models import Project

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
    "max_clicks",
    "seconds",
)


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
