"""REST endpoints for proposal jobs: start one on an image or a project, follow it.

POST bodies are optional: {"label": name or id, "options": {...}} where
options override worker.engines.proposing.ProposalSettings (e.g. "points_per_side").
Members only; to anyone else the project, image or job does not exist (404).
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.inputs import parse_input
from backend.images.models import Image
from backend.images.selectors import image_for_user
from backend.projects.access import project_for_user
from backend.projects.models import Project
from backend.projects.selectors import label_resolve
from backend.proposals.selectors import proposal_job_for_user, proposal_job_list
from backend.proposals.serializers import ProposalStartInput, proposal_job_json
from backend.proposals.services import proposal_job_start


def _start(request: Request, project: Project, image: Image | None) -> Response:
    data = parse_input(ProposalStartInput, request.data or {})
    label = label_resolve(project=project, label=data["label"]) if "label" in data else None
    job = proposal_job_start(
        project=project, user=request.user, image=image, label=label, options=data.get("options")
    )
    return Response({"job": proposal_job_json(job)}, status=status.HTTP_202_ACCEPTED)


class ImageProposalsApi(APIView):
    """POST -> 202 {"job": job}: propose instances on this image."""

    def post(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        return _start(request, image.project, image)


class ProjectProposalsApi(APIView):
    """GET -> the project's recent jobs; POST -> 202 {"job": job}: propose on every image."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        return Response([proposal_job_json(job) for job in proposal_job_list(project=project)])

    def post(self, request: Request, project_id: int) -> Response:
        return _start(request, project_for_user(request.user, project_id), None)


class ProposalJobApi(APIView):
    """GET -> the job, for a progress bar (poll until status is done or failed)."""

    def get(self, request: Request, job_id: int) -> Response:
        return Response(proposal_job_json(proposal_job_for_user(request.user, job_id)))
