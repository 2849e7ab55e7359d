"""REST endpoints for instances (with versions, history, soft delete and
restore), the COCO export, and labels after creation (here, not in
projects, because deleting one may merge its instances into another)."""

from __future__ import annotations

import json

from django.http import Http404, HttpResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.annotations.export import FORMATS, coco_export_for, export_file_name
from backend.annotations.models import Assignment
from backend.annotations.selectors import (
    assignment_for_user,
    curated_visible,
    deleted_instance_list,
    instance_any_for_user,
    instance_for_user,
    instance_history,
    instance_list_rows,
)
from backend.annotations.serializers import (
    InstanceCreateInput,
    InstanceUpdateInput,
    InstanceVersionInput,
    deleted_instance_json,
    history_json,
    instance_json,
    instance_row_json,
)
from backend.annotations.services.instances import (
    InstanceConflictError,
    instance_accept,
    instance_create_once,
    instance_delete,
    instance_restore,
    instance_update,
)
from backend.annotations.services.labels import label_delete
from backend.common.errors import ServiceError
from backend.common.inputs import parse_input
from backend.common.negotiation import FirstRenderer
from backend.images.models import Image
from backend.images.selectors import image_for_user
from backend.projects.access import project_for_user
from backend.projects.labels import label_create, label_update
from backend.projects.selectors import label_for_user, label_resolve
from backend.projects.serializers import LabelCreateInput, LabelUpdateInput, label_json


def conflict_response(conflict: InstanceConflictError) -> Response:
    """409 with the server's current instance, so the client can show both."""
    body = {"detail": conflict.message, "instance": instance_json(conflict.instance)}
    return Response(body, status=status.HTTP_409_CONFLICT)


def _set_of(request: Request, image: Image, raw: object) -> Assignment | None:
    """The set named by `raw` (an assignment id) on this image, if the caller
    may see it (else 404); None names the curated set, which a blind
    project hides from annotators."""
    if raw in (None, ""):
        if not curated_visible(user=request.user, image=image):
            message = (
                "This project is blind: annotators see only their own sets."
                if image.project.blind
                else "Open this image from your queue (Start annotating) to annotate it."
            )
            raise ServiceError(message, status_code=status.HTTP_403_FORBIDDEN)
        return None
    try:
        assignment_id = int(str(raw))
    except ValueError:
        raise ServiceError(f"assignment must be an assignment id, not {raw!r}.") from None
    assignment = assignment_for_user(request.user, assignment_id)
    if assignment.image_id != image.pk:
        raise Http404("No such assignment on this image.")
    # A shared set (a direct project's) is the curated set itself.
    return None if assignment.shared else assignment


class ImageInstancesApi(APIView):
    """GET -> the live instances; GET ?deleted=1 -> recently deleted ones; POST -> create.
    ?assignment= (GET) or "assignment" (POST) names a person's set; without
    it, the image's curated set."""

    def get(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        of_set = _set_of(request, image, request.query_params.get("assignment"))
        if request.query_params.get("deleted") in ("1", "true"):
            deleted = deleted_instance_list(image=image, assignment=of_set)
            return Response([deleted_instance_json(i) for i in deleted])
        rows = instance_list_rows(image=image, assignment=of_set)
        return Response([instance_row_json(r) for r in rows])

    def post(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        data = parse_input(InstanceCreateInput, request.data)
        of_set = _set_of(request, image, data.get("assignment"))
        # A create sent again because its answer was lost: the first one stands.
        instance, created = instance_create_once(
            image=image,
            user=request.user,
            label=label_resolve(project=image.project, label=data["label"]),
            rle=data["rle"],
            client_key=data["client_key"],
            assignment=of_set,
            sources=data["sources"],
            origin=data["origin"],
        )
        return Response(
            instance_json(instance),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class InstanceDetailApi(APIView):
    """PATCH {label?, rle?, version?}; DELETE ?version=n. A stale version -> 409."""

    def get(self, request: Request, instance_id: int) -> Response:
        return Response(instance_json(instance_for_user(request.user, instance_id)))

    def patch(self, request: Request, instance_id: int) -> Response:
        instance = instance_for_user(request.user, instance_id)
        data = parse_input(InstanceUpdateInput, request.data)
        project = instance.image.project
        label = None if "label" not in data else label_resolve(project=project, label=data["label"])
        try:
            instance = instance_update(
                instance=instance,
                user=request.user,
                version=data.get("version"),
                label=label,
                rle=data.get("rle"),
            )
        except InstanceConflictError as conflict:
            return conflict_response(conflict)
        return Response(instance_json(instance))

    def delete(self, request: Request, instance_id: int) -> Response:
        instance = instance_for_user(request.user, instance_id)
        data = parse_input(InstanceVersionInput, request.query_params)
        try:
            instance_delete(instance=instance, user=request.user, version=data.get("version"))
        except InstanceConflictError as conflict:
            return conflict_response(conflict)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InstanceRestoreApi(APIView):
    """POST -> the deleted instance back, same id, version bumped (200)."""

    def post(self, request: Request, instance_id: int) -> Response:
        instance = instance_any_for_user(request.user, instance_id)
        return Response(instance_json(instance_restore(instance=instance, user=request.user)))


class InstanceHistoryApi(APIView):
    """GET -> every change of the instance, oldest first (deleted instances too)."""

    def get(self, request: Request, instance_id: int) -> Response:
        instance = instance_any_for_user(request.user, instance_id)
        return Response([history_json(entry) for entry in instance_history(instance=instance)])


class InstanceAcceptApi(APIView):
    """POST -> the proposal, now accepted and authored by the caller (200)."""

    def post(self, request: Request, instance_id: int) -> Response:
        instance = instance_for_user(request.user, instance_id)
        return Response(instance_json(instance_accept(instance=instance, user=request.user)))


class ProjectExportApi(APIView):
    """GET ?format=coco&sets=curated|all -> the dataset as a JSON attachment."""

    content_negotiation_class = FirstRenderer

    def get(self, request: Request, project_id: int) -> HttpResponse:
        project = project_for_user(request.user, project_id)
        fmt = request.query_params.get("format", "coco")
        if fmt not in FORMATS:
            raise ServiceError(f"Unknown export format {fmt!r}; available: {', '.join(FORMATS)}.")
        sets = request.query_params.get("sets", "curated") or "curated"
        export = coco_export_for(project=project, user=request.user, sets=sets)
        body = json.dumps(export, separators=(",", ":"))
        response = HttpResponse(body, content_type="application/json")
        name = export_file_name(project=project, fmt=fmt)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class ProjectLabelsApi(APIView):
    """POST {"name", "color"?} -> 201 the new label, last in the list (owners only)."""

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = parse_input(LabelCreateInput, request.data)
        label = label_create(
            project=project, user=request.user, name=data["name"], color=data.get("color")
        )
        return Response(label_json(label), status=status.HTTP_201_CREATED)


class LabelDetailApi(APIView):
    """PATCH {"name"?, "color"?, "order"?} -> the label; DELETE ?merge_into=ID
    -> 204 (409 while instances use it and no merge_into is given)."""

    def patch(self, request: Request, label_id: int) -> Response:
        label = label_for_user(request.user, label_id)
        data = parse_input(LabelUpdateInput, request.data)
        label = label_update(
            label=label,
            user=request.user,
            name=data.get("name"),
            color=data.get("color"),
            order=data.get("order"),
        )
        return Response(label_json(label))

    def delete(self, request: Request, label_id: int) -> Response:
        label = label_for_user(request.user, label_id)
        merge_into = request.query_params.get("merge_into")
        if merge_into is not None and not merge_into.isdigit():
            raise ServiceError("merge_into must be a label id.")
        label_delete(
            label=label,
            user=request.user,
            merge_into=int(merge_into) if merge_into is not None else None,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
