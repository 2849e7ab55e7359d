"""REST endpoints for training: start, follow and cancel jobs; list, adopt
and download versions. Members see them; owners train and adopt; to anyone
else the project or job does not exist (404)."""

from __future__ import annotations

from django.http import FileResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.errors import ServiceError
from backend.projects.access import project_for_user
from backend.projects.permissions import Action, project_require
from backend.segmentation.selectors import engine_spec_for_project
from backend.segmentation.trained import trained_checkpoint_file
from backend.training.selectors import (
    model_version,
    model_versions,
    training_job_for_user,
    training_jobs,
)
from backend.training.serializers import model_version_json, training_job_json
from backend.training.services import training_cancel, training_start
from backend.training.versions import version_adopt


class ProjectTrainingApi(APIView):
    """GET -> the project's recent training jobs; POST {"kind", ...} -> 202 the job."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        return Response([training_job_json(j) for j in training_jobs(project=project)])

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        if not isinstance(request.data, dict):
            raise ServiceError("Send a JSON object.")
        job = training_start(project=project, user=request.user, data=request.data)
        return Response(training_job_json(job), status=status.HTTP_202_ACCEPTED)


class TrainingJobApi(APIView):
    """GET -> the job: status, progress, curve, before and after."""

    def get(self, request: Request, training_id: int) -> Response:
        return Response(training_job_json(training_job_for_user(request.user, training_id)))


class TrainingCancelApi(APIView):
    """POST -> the job, asked to stop (owners)."""

    def post(self, request: Request, training_id: int) -> Response:
        job = training_job_for_user(request.user, training_id)
        job = training_cancel(job=job, user=request.user)
        return Response(training_job_json(job))


class ProjectModelsApi(APIView):
    """GET -> the project's trained versions, newest first, with their figures."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        current = engine_spec_for_project(project).name
        return Response([model_version_json(v, current) for v in model_versions(project=project)])


class ModelAdoptApi(APIView):
    """POST -> the version, now the project's model (owners)."""

    def post(self, request: Request, project_id: int, number: int) -> Response:
        project = project_for_user(request.user, project_id)
        version = version_adopt(version=model_version(project=project, number=number),
                                user=request.user)  # fmt: skip
        return Response(model_version_json(version, version.model.name))


class ModelCheckpointApi(APIView):
    """GET -> the version's weights file (owners and reviewers)."""

    def get(self, request: Request, project_id: int, number: int) -> FileResponse:
        project = project_for_user(request.user, project_id)
        project_require(project=project, user=request.user, action=Action.EVALUATE)
        version = model_version(project=project, number=number)
        path = trained_checkpoint_file(model=version.model)
        return FileResponse(path.open("rb"), as_attachment=True,
                            filename=f"{version.model.name}{path.suffix}")  # fmt: skip
