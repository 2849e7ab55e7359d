"""REST endpoints for 3D propagation: start one from an instance on a plane
of a volume, follow it. Members only; to anyone else the image, instance or
job does not exist (404)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.annotations.selectors import instance_for_user
from backend.common.inputs import parse_input
from backend.images.selectors import image_for_user
from backend.propagation.selectors import propagation_job_for_user
from backend.propagation.serializers import PropagateInput, propagation_job_json
from backend.propagation.services import propagation_start


class ImagePropagateApi(APIView):
    """POST {"instance", "direction": "up" | "down" | "both"} -> 202 {"job": job}."""

    def post(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        data = parse_input(PropagateInput, request.data or {})
        instance = instance_for_user(request.user, data["instance"])
        job = propagation_start(
            image=image, instance=instance, user=request.user, direction=data["direction"]
        )
        return Response({"job": propagation_job_json(job)}, status=status.HTTP_202_ACCEPTED)


class PropagationJobApi(APIView):
    """GET -> the job (its progress also reaches the image's WebSocket)."""

    def get(self, request: Request, job_id: int) -> Response:
        return Response(propagation_job_json(propagation_job_for_user(request.user, job_id)))
