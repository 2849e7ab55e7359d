from __future__ import annotations

from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.errors import ServiceError
from backend.projects.access import project_for_user
from backend.segmentation.health import engine_info, health_report
from backend.segmentation.selectors import engine_spec_named, installed_model_names


class HealthApi(APIView):
    """Public: tells load balancers and the UI whether clicks can work."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        report = health_report()
        return Response(report, status=200 if report["status"] == "ok" else 503)


class ModelListApi(APIView):
    """The installed models a project can choose (any logged-in user);
    `?project=<id>` adds the models trained for that project (its members)."""

    def get(self, request: Request) -> Response:
        project = None
        if request.query_params.get("project"):
            project = project_for_user(request.user, _project_id(request.query_params["project"]))
        models = []
        for name in installed_model_names(project):
            spec = engine_spec_named(name, project)
            if spec is not None:
                models.append(engine_info(spec))
        return Response(models)


def _project_id(raw: str) -> int:
    if not raw.isdigit():
        raise ServiceError(f"project must be a project's id, not {raw!r}.")
    return int(raw)
