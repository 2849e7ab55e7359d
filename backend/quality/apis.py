"""REST endpoints of quality control."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.inputs import parse_input
from backend.images.selectors import image_for_user
from backend.projects.permissions import Action, project_require
from backend.quality.selectors import image_agreement
from backend.quality.serializers import (
    AgreementInput,
    ConsensusInput,
    agreement_json,
    consensus_json,
)
from backend.quality.services import consensus_run


class ImageAgreementApi(APIView):
    """GET ?iou= -> how the image's finished sets agree, pair by pair (owners and reviewers)."""

    def get(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        project_require(project=image.project, user=request.user, action=Action.REVIEW)
        data = parse_input(AgreementInput, request.query_params)
        return Response(agreement_json(image_agreement(image=image, threshold=data["iou"])))


class ImageConsensusApi(APIView):
    """POST {"method"?, "iou"?, "quorum"?, "confirm"?} -> the image's consensus (leads)."""

    def post(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        data = parse_input(ConsensusInput, request.data or {})
        outcome = consensus_run(
            image=image,
            user=request.user,
            method=data.get("method"),
            iou=data.get("iou"),
            quorum=data.get("quorum"),
            confirm=data["confirm"],
        )
        return Response(consensus_json(outcome))
