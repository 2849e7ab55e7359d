"""Evaluations as background jobs: started from the project page or the API
(`POST /api/projects/{id}/evaluations/`), recorded queued and enqueued once
the transaction commits; run.py measures. Owners and reviewers start them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from backend.common.enqueue import enqueue_or_fail
from backend.common.errors import ServiceError
from backend.evaluations.models import EngineEvaluation
from backend.evaluations.tasks import run_evaluation
from backend.projects.models import Project
from backend.projects.permissions import Action, project_require
from backend.segmentation.selectors import (
    engine_spec_for_project,
    engine_spec_named,
    installed_model_names,
)
from worker.engines.spec import EngineSpec

if TYPE_CHECKING:
    from backend.projects.access import AnyUser


def evaluation_request(project: Project, data: dict[str, Any]) -> tuple[EngineSpec, str]:
    unknown = sorted(set(data) - {"model", "split"})
    if unknown:
        raise ServiceError(f"Unknown evaluation option(s): {', '.join(unknown)}.")
    split = data.get("split", EngineEvaluation.Split.VALIDATION)
    if split not in EngineEvaluation.Split.values:
        raise ServiceError(f"split must be validation or all, not {split!r}.")
    name = data.get("model")
    if name is None:
        return engine_spec_for_project(project), str(split)
    spec = engine_spec_named(name, project) if isinstance(name, str) else None
    if spec is None:
        known = ", ".join(installed_model_names(project))
        raise ServiceError(f"There is no model named {name!r} for this project; known: {known}.")
    return spec, str(split)


def evaluation_start(*, project: Project, user: AnyUser, data: dict[str, Any]) -> EngineEvaluation:
    project_require(project=project, user=user, action=Action.EVALUATE)
    spec, split = evaluation_request(project, data)
    with transaction.atomic():
        evaluation = EngineEvaluation.objects.create(
            project=project, model_name=spec.name, engine_key=spec.key, created_by=user,
            status=EngineEvaluation.Status.QUEUED, split=split, progress=0.0,
        )  # fmt: skip
        evaluation_id = evaluation.pk
        transaction.on_commit(lambda: _enqueue(evaluation_id))
    return evaluation


def _enqueue(evaluation_id: int) -> None:
    enqueue_or_fail(
        run_evaluation, EngineEvaluation, evaluation_id, failed=EngineEvaluation.Status.FAILED
    )
