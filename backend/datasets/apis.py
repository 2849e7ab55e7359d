"""REST endpoints for datasets: exports (start, follow, download) and splits.
Members only; to anyone else the project or export does not exist (404)."""

from __future__ import annotations

from django.http import FileResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.annotations.export import export_file_name
from backend.common.errors import ServiceError
from backend.datasets.exporting import export_start
from backend.datasets.importing import import_run
from backend.datasets.models import Export
from backend.datasets.retention import export_delete
from backend.datasets.selectors import export_for_user, export_list
from backend.datasets.serializers import export_json
from backend.datasets.splits import splits_change, splits_summary
from backend.projects.access import project_for_user
from backend.projects.permissions import Action, project_require


class ProjectExportsApi(APIView):
    """GET -> your recent exports of the project (all, for leads); POST
    {"format", "images"?, "split"?, "polygons"?} -> 202 the export, written
    in the background."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        project_require(project=project, user=request.user, action=Action.SEE_CURATED)
        return Response([export_json(e) for e in export_list(project=project, user=request.user)])

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        if not isinstance(request.data, dict):
            raise ServiceError("Send a JSON object.")
        export = export_start(project=project, user=request.user, data=request.data)
        return Response(export_json(export), status=status.HTTP_202_ACCEPTED)


class ExportApi(APIView):
    """GET -> the export (poll its status and progress); DELETE -> 204, the
    export and its zip are gone (one being written stops)."""

    def get(self, request: Request, export_id: int) -> Response:
        return Response(export_json(export_for_user(request.user, export_id)))

    def delete(self, request: Request, export_id: int) -> Response:
        export_delete(export=export_for_user(request.user, export_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExportDownloadApi(APIView):
    """GET -> the zip, once the export is done (409 before)."""

    def get(self, request: Request, export_id: int) -> FileResponse:
        export = export_for_user(request.user, export_id)
        if export.status != Export.Status.DONE or not export.path.exists():
            raise ServiceError(
                f"The export is {export.status}: download it when it is done.",
                status_code=status.HTTP_409_CONFLICT,
            )
        name = export_file_name(project=export.project, fmt=export.format).removesuffix(".json")
        return FileResponse(
            export.path.open("rb"), as_attachment=True, filename=f"{name}.zip",
            content_type="application/zip",
        )  # fmt: skip


class ProjectSplitsApi(APIView):
    """GET -> the fractions, seed and counts; PATCH {"fractions"?, "seed"?,
    "images"?: {id: split}} (owners) -> the same."""

    def get(self, request: Request, project_id: int) -> Response:
        """?images=1,2,3 adds those images' splits."""
        project = project_for_user(request.user, project_id)
        wanted = request.query_params.get("images")
        try:
            ids = [int(v) for v in wanted.split(",") if v] if wanted is not None else None
        except ValueError:
            raise ServiceError("images must be image ids separated by commas.") from None
        return Response(splits_summary(project=project, image_ids=ids))

    def patch(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        project_require(project=project, user=request.user, action=Action.CHANGE_PROJECT)
        data = request.data if isinstance(request.data, dict) else {}
        fractions, seed, images = data.get("fractions"), data.get("seed"), data.get("images")
        if fractions is not None and not isinstance(fractions, dict):
            raise ServiceError("fractions must be an object {train, val, test}.")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ServiceError("seed must be a whole number of at least 0.")
        if images is not None and not isinstance(images, dict):
            raise ServiceError('images must be an object {"image id": "train" | "val" | "test"}.')
        try:
            by_id = {int(k): v for k, v in (images or {}).items()}
        except ValueError:
            raise ServiceError("images must be keyed by image ids.") from None
        splits_change(project=project, fractions=fractions, seed=seed, images=by_id)
        return Response(splits_summary(project=project))


class ProjectImportsApi(APIView):
    """POST multipart {file, format: coco | labels, dry_run?, as?: curated |
    proposed, label?, suffix?} -> the report: 200 for a dry run, 201 when
    imported, 400 (and nothing stored) when any file was refused."""

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise ServiceError("Send the file to import as the multipart field 'file'.")
        fields = {k: request.data.get(k) for k in request.data if k != "file"}
        report, wanted, imported = import_run(
            project=project, user=request.user, upload=upload, data=fields
        )
        if report["refused"] and not wanted.dry_run:
            first = report["refused"][0]
            where = f"{first['file']}: " if first["file"] else ""
            detail = f"Nothing was imported: {where}{first['reason']}."
            return Response({"detail": detail, **report}, status=status.HTTP_400_BAD_REQUEST)
        code = status.HTTP_201_CREATED if imported else status.HTTP_200_OK
        return Response(report, status=code)
