"""REST endpoints for images: upload, list, detail, display PNG, delete; stacks."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.db import transaction
from django.http import FileResponse, Http404
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.errors import ServiceError
from backend.common.inputs import parse_input
from backend.common.negotiation import FirstRenderer
from backend.common.pagination import paginate
from backend.images.display_apis import image_viewing_json
from backend.images.selectors import image_display_file, image_for_user, image_list, stack_for_user
from backend.images.serializers import ImageUpdateInput, image_json, image_page_json, stack_json
from backend.images.services import (
    image_complete_set,
    image_delete,
    image_gold_set,
    image_upload,
    stack_delete,
)
from backend.projects.access import project_for_user
from backend.projects.permissions import Action, project_role, role_may


class ProjectImagesApi(APIView):
    parser_classes = [MultiPartParser]

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        return Response(paginate(request, image_list(project=project), image_page_json))

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        try:
            files = request.FILES.getlist("file")
        except TooManyFilesSent as exc:
            limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
            raise ServiceError(f"At most {limit} files per upload.") from exc
        images = image_upload(project=project, user=request.user, files=files)
        return Response(
            {"images": [image_json(image, with_planes=False) for image in images]},
            status=status.HTTP_201_CREATED,
        )


class ImageDetailApi(APIView):
    def get(self, request: Request, image_id: int) -> Response:
        image = image_for_user(request.user, image_id)
        body = {**image_json(image), **image_viewing_json(image)}
        # Gold images look like any other to annotators.
        if role_may(project_role(project=image.project, user=request.user), Action.REVIEW):
            body["gold"] = image.gold
        return Response(body)

    def patch(self, request: Request, image_id: int) -> Response:
        """{"gold": true|false} (owners) and/or {"complete": true|false} (those
        who edit the curated set); both or nothing."""
        image = image_for_user(request.user, image_id)
        data = parse_input(ImageUpdateInput, request.data)
        with transaction.atomic():
            if "gold" in data:
                image = image_gold_set(image=image, user=request.user, gold=data["gold"])
            if "complete" in data:
                image = image_complete_set(image=image, user=request.user,
                                           complete=data["complete"])  # fmt: skip
        return Response({**image_json(image), "gold": image.gold})

    def delete(self, request: Request, image_id: int) -> Response:
        image_delete(image=image_for_user(request.user, image_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageDisplayApi(APIView):
    """The 8-bit RGB rendering, served only to project members (never a public URL)."""

    content_negotiation_class = FirstRenderer

    def get(self, request: Request, image_id: int) -> FileResponse:
        image = image_for_user(request.user, image_id)
        path = image_display_file(image=image)
        if not path.is_file():
            raise Http404("No display image.")
        response = FileResponse(path.open("rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response


class StackDetailApi(APIView):
    """A multi-page file's planes; each plane is an image of its own."""

    def get(self, request: Request, stack_id: int) -> Response:
        return Response(stack_json(stack_for_user(request.user, stack_id)))

    def delete(self, request: Request, stack_id: int) -> Response:
        stack_delete(stack=stack_for_user(request.user, stack_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
