"""REST endpoints for instances and the COCO export."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.annotations.export import FORMATS, coco_export, export_file_name
from backend.annotations.selectors import instance_list
from backend.annotations.serializers import InstanceCreateInput, InstanceUpdateInput, instance_json
from backend.annotations.services import (
    instance_accept,
    instance_create,
    instance_delete,
    instance_relabel,
)
from backend.common.errors import ServiceError
from backend.common.inputs import parse_input
from backend.common.negotiation import FirstRenderer
from backend.projects.access import image_for_user, instance_for_user, project_for_user
from backend.projects.selectors import label_resolve


class ImageInstancesApi(APIView):
    def get(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        return Response([instance_json(i) for i in instance_list(image=image)])

    def post(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        data = parse_input(InstanceCreateInput, request.data)
        instance = instance_create(
            image=image,
            user=request.user,
            label=label_resolve(project=image.project, label=data["label"]),
            rle=data["rle"],
            state=data["state"],
        )
        return Response(instance_json(instance), status=status.HTTP_201_CREATED)


class InstanceDetailApi(APIView):
    def get(self, request: Request, instance_id: int) -> Response:
        return Response(instance_json(instance_for_user(request.user, instance_id)))

    def patch(self, request: Request, instance_id: int) -> Response:
        instance = instance_for_user(request.user, instance_id)
        data = parse_input(InstanceUpdateInput, request.data)
        label = label_resolve(project=instance.image.project, label=data["label"])
        instance = instance_relabel(instance=instance, user=request.user, label=label)
        return Response(instance_json(instance))

    def delete(self, request: Request, instance_id: int) -> Response:
        instance_delete(instance=instance_for_user(request.user, instance_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InstanceAcceptApi(APIView):
    """POST -> the proposal, now accepted and authored by the caller (200)."""

    def post(self, request: Request, instance_id: int) -> Response:
        instance = instance_for_user(request.user, instance_id)
        return Response(instance_json(instance_accept(instance=instance, user=request.user)))


class ProjectExportApi(APIView):
    """GET ?format=coco -> the dataset as a JSON attachment."""

    content_negotiation_class = FirstRenderer

    def get(self, request: Request, project_id: int) -> HttpResponse:
        project = project_for_user(request.user, project_id)
        fmt = request.query_params.get("format", "coco")
        if fmt not in FORMATS:
            raise ServiceError(f"Unknown export format {fmt!r}; available: {', '.join(FORMATS)}.")
        body = json.dumps(coco_export(project=project), separators=(",", ":"))
        response = HttpResponse(body, content_type="application/json")
        name = export_file_name(project=project, fmt=fmt)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
