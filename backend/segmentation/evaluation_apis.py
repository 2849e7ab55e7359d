"""REST endpoint for a project's engine evaluations.

Evaluations are started with `manage.py evaluate_engine` for now; starting
one from the UI would be a POST here that enqueues a Celery task.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.projects.access import project_for_user
from backend.segmentation.evaluation_selectors import evaluation_list, evaluation_summary
from backend.segmentation.models import EngineEvaluation


def evaluation_json(evaluation: EngineEvaluation) -> dict[str, Any]:
    created_by = evaluation.created_by
    return {
        "id": evaluation.pk,
        **evaluation_summary(evaluation),
        "created_at": evaluation.created_at.isoformat(),
        "created_by": created_by.get_username() if created_by is not None else None,
    }


class ProjectEvaluationsApi(APIView):
    """GET -> the project's evaluations, newest first; members only."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        evaluations = evaluation_list(project=project).select_related("created_by")
        return Response([evaluation_json(e) for e in evaluations])
