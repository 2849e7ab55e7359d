"""REST endpoints for seeing images: raw tiles, display settings, the model's channels.

Tiles are raw samples, not pictures: the browser maps them to colours itself
(frontend/static/maskroom/image/composite.js), so contrast changes need no new
request. A tile's body is the (C, h, w) array in the image's dtype,
little-endian, C-order, gzip-compressed on the wire when the client accepts
it; X-Tile-Shape ("C,h,w") and X-Tile-Dtype say how to read it.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from django.db import transaction
from django.http import HttpResponse
from django.urls import reverse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.errors import ServiceError
from backend.common.negotiation import FirstRenderer
from backend.images.display import (
    channel_mapping,
    channel_mapping_set,
    display_settings,
    display_settings_reset,
    display_settings_set,
    image_model_mapping,
    model_window,
    model_window_set,
)
from backend.images.models import Image
from backend.images.pyramid import TileNotFoundError, image_pyramid, pyramid_json
from backend.images.selectors import image_for_user
from backend.images.windows import PRESETS
from backend.projects.access import project_for_user
from backend.projects.models import Membership
from backend.projects.permissions import project_role

# Level 1 costs a few milliseconds a tile and saves a third or more of the
# bytes of typical microscopy data; higher levels cost much more for little.
GZIP_LEVEL = 1
_COORDINATE = re.compile(r"^[0-9]{1,6}$")
WINDOW_PRESETS_JSON = {name: {"level": lv, "width": w} for name, (lv, w) in PRESETS.items()}


def tile_url_template(image_id: int) -> str:
    """The tile address with {level}, {x} and {y} left for the viewer to fill in."""
    url = reverse(
        "api-image-tile", kwargs={"image_id": image_id, "level": "L", "tx": "X", "ty": "Y"}
    )
    return url.replace("/L/X/Y.bin", "/{level}/{x}/{y}.bin")


def _coordinate(raw: str, name: str) -> int:
    if not _COORDINATE.match(raw):
        raise ServiceError(f"{name} must be a non-negative integer, got {raw[:20]!r}.")
    return int(raw)


def _accepts_gzip(request: Request) -> bool:
    accepted = request.META.get("HTTP_ACCEPT_ENCODING", "")
    return any(part.split(";")[0].strip() == "gzip" for part in accepted.split(","))


class ImageTileApi(APIView):
    """GET /api/images/{id}/tiles/{level}/{x}/{y}.bin: one tile of raw samples."""

    content_negotiation_class = FirstRenderer

    def get(self, request: Request, image_id: int, level: str, tx: str, ty: str) -> HttpResponse:
        coordinates = (
            _coordinate(level, "level"),
            _coordinate(tx, "x"),
            _coordinate(ty, "y"),
        )
        image = image_for_user(request.user, image_id)
        pyramid = image_pyramid(image)
        try:
            tile = pyramid.tile(*coordinates)
        except TileNotFoundError as exc:
            raise ServiceError(str(exc), status_code=404) from exc
        body = tile.tobytes()
        response = HttpResponse(content_type="application/octet-stream")
        if _accepts_gzip(request) and len(body) > 1024:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
            body = compressor.compress(body) + compressor.flush()
            response["Content-Encoding"] = "gzip"
        response.content = body
        response["X-Tile-Shape"] = ",".join(str(n) for n in tile.shape)
        response["X-Tile-Dtype"] = pyramid.dtype
        response["Vary"] = "Accept-Encoding"
        # A tile never changes: image ids are not reused and planes are never rewritten.
        response["Cache-Control"] = "private, max-age=86400"
        return response


class ProjectDisplayApi(APIView):
    """The project's display settings: members read and write them."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        return Response(display_settings(project=project))

    def put(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = request.data if isinstance(request.data, dict) else {}
        if "channels" not in data:
            raise ServiceError('Send {"channels": [{"visible", "color", "min", "max"}, ...]}.')
        channels = data["channels"]
        return Response(display_settings_set(project=project, user=request.user, channels=channels))

    def delete(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        return Response(display_settings_reset(project=project, user=request.user))


class ProjectChannelMappingApi(APIView):
    """What the model sees: which channels as red, green and blue, and
    through which intensity window; owners change them."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        role = project_role(project=project, user=request.user)
        return Response(
            {
                "mapping": channel_mapping(project=project),
                "window": model_window(project=project),
                "presets": WINDOW_PRESETS_JSON,
                "can_edit": role == Membership.Role.OWNER,
            }
        )

    def patch(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = request.data if isinstance(request.data, dict) else {}
        if "mapping" not in data and "window" not in data:
            raise ServiceError(
                'Send {"mapping": [red, green, blue]} (channel indices or null) and/or '
                '{"window": {"preset": "lung"} or {"level": 40, "width": 400} or null}.'
            )
        with transaction.atomic():
            scheduled = 0
            if "mapping" in data:
                scheduled = channel_mapping_set(
                    project=project, user=request.user, mapping=data["mapping"]
                )[1]
            if "window" in data:
                scheduled = (
                    model_window_set(project=project, user=request.user, window=data["window"])[1]
                    or scheduled
                )
        return Response(
            {
                "mapping": channel_mapping(project=project),
                "window": model_window(project=project),
                "presets": WINDOW_PRESETS_JSON,
                "can_edit": True,
                "embeddings_scheduled": scheduled,
            }
        )


def image_viewing_json(image: Image) -> dict[str, Any]:
    """What the image detail adds for the viewer: its tile pyramid (built on
    first use) and the channels the model sees."""
    return {
        "pyramid": pyramid_json(image_pyramid(image), tile_url=tile_url_template(image.pk)),
        "model_mapping": image_model_mapping(image),
        "model_window": model_window(project=image.project),
        "window_presets": WINDOW_PRESETS_JSON,
    }
