from __future__ import annotations

from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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
    """The installed models a project can choose (any logged-in user)."""

    def get(self, request: Request) -> Response:
        models = []
        for name in installed_model_names():
            spec = engine_spec_named(name)
            if spec is not None:
                models.append(engine_info(spec))
        return Response(models)
