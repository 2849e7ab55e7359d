"""REST endpoints of quality control."""

from __future__ import annotations

import csv
import io

from django.http import HttpResponse
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.annotations.selectors import assignment_for_user
from backend.common.inputs import parse_input
from backend.common.negotiation import FirstRenderer
from backend.images.selectors import image_for_user
from backend.projects.access import project_for_user
from backend.projects.permissions import Action, project_require
from backend.quality.dashboard import (
    COLUMNS,
    AnnotatorRow,
    annotator_pairs,
    annotator_rows,
    image_rows,
    throughput,
)
from backend.quality.disputes import dispute_resolve
from backend.quality.run import consensus_run
from backend.quality.selectors import (
    consensus_record,
    gold_feedback,
    gold_reference,
    image_agreement,
)
from backend.quality.serializers import (
    AgreementInput,
    ConsensusInput,
    agreement_json,
    consensus_json,
    consensus_record_json,
)


class ImageAgreementApi(APIView):
    """GET ?iou= -> how the image's finished sets agree, pair by pair (owners and reviewers)."""

    def get(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        project_require(project=image.project, user=request.user, action=Action.REVIEW)
        data = parse_input(AgreementInput, request.query_params)
        return Response(agreement_json(image_agreement(image=image, threshold=data["iou"])))


class ImageConsensusApi(APIView):
    """GET -> how the image's last consensus was made and whether it is
    disputed; POST {"method"?, "iou"?, "quorum"?, "confirm"?} -> a new
    consensus (owners and reviewers)."""

    def get(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        project_require(project=image.project, user=request.user, action=Action.REVIEW)
        record = consensus_record(image=image)
        if record is None:
            raise NotFound("No consensus has been computed for this image yet.")
        return Response(consensus_record_json(record))

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


class ImageConsensusResolveApi(APIView):
    """POST -> the disputed image resolved: its curated set stands (owners and reviewers)."""

    def post(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        return Response(consensus_record_json(dispute_resolve(image=image, user=request.user)))


class AssignmentReferenceApi(APIView):
    """GET -> a finished gold set's score and the reference outlines it was
    scored against, where the project gives feedback; else 404."""

    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_for_user(request.user, assignment_id)
        if assignment.annotator_id != request.user.pk:
            # Another annotator who may see the set never sees a gold truth.
            project_require(
                project=assignment.image.project, user=request.user, action=Action.REVIEW
            )
        reference = gold_reference(assignment=assignment)
        feedback = gold_feedback(assignment=assignment)
        if reference is None or feedback is None:
            raise NotFound("This set has no reference to compare with.")
        return Response(
            {
                **feedback,
                "instances": [
                    {"rle": i.rle, "label_id": i.label_id, "label": i.label.name} for i in reference
                ],
            }
        )


class ProjectQualityApi(APIView):
    """GET -> each annotator's numbers and the least agreed images; ?format=csv the table."""

    content_negotiation_class = FirstRenderer

    def get(self, request: Request, project_id: int) -> HttpResponse:
        project = project_for_user(request.user, project_id)
        project_require(project=project, user=request.user, action=Action.REVIEW)
        rows = annotator_rows(project=project)
        if request.query_params.get("format") == "csv":
            return _csv(project.name, rows)
        return Response(
            {
                "annotators": [r.as_dict() for r in rows],
                "images": image_rows(project=project),
                "pairs": annotator_pairs(project=project),
                "throughput": throughput(project=project),
            }
        )


def _csv(name: str, rows: list[AnnotatorRow]) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row.as_dict().values()])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:60] or "project"
    response["Content-Disposition"] = f'attachment; filename="{safe}-quality.csv"'
    return response
