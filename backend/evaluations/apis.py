"""REST endpoint for a project's engine evaluations.

Evaluations are started with `manage.py evaluate_engine` for now; starting
one from the UI would be a POST here that enqueues a Celery task.
"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.evaluations.selectors import evaluation_list
from backend.evaluations.serializers import evaluation_json
from backend.projects.access import project_for_user


class ProjectEvaluationsApi(APIView):
    """GET -> the project's evaluations, newest first; members only."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        evaluations = evaluation_list(project=project).select_related("created_by")
        return Response([evaluation_json(e) for e in evaluations])
