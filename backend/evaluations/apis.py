"""REST endpoints for a project's engine evaluations: list them, start one
as a background job (owners and reviewers), follow it."""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.errors import ServiceError
from backend.evaluations.jobs import evaluation_start
from backend.evaluations.selectors import evaluation_for_user, evaluation_list
from backend.evaluations.serializers import evaluation_json
from backend.projects.access import project_for_user


class ProjectEvaluationsApi(APIView):
    """GET -> the project's evaluations, newest first; members only.
    POST {"model"?, "split"?} -> 202 the evaluation, measured in the background."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        evaluations = evaluation_list(project=project).select_related("created_by")
        return Response([evaluation_json(e) for e in evaluations])

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        if not isinstance(request.data, dict):
            raise ServiceError("Send a JSON object.")
        evaluation = evaluation_start(project=project, user=request.user, data=request.data)
        return Response(evaluation_json(evaluation), status=status.HTTP_202_ACCEPTED)


class EvaluationApi(APIView):
    """GET -> one evaluation (poll its status and progress)."""

    def get(self, request: Request, evaluation_id: int) -> Response:
        return Response(evaluation_json(evaluation_for_user(request.user, evaluation_id)))
