from django.urls import path

from backend.segmentation.apis import HealthApi
from backend.segmentation.evaluation_apis import ProjectEvaluationsApi

urlpatterns = [
    path("health/", HealthApi.as_view(), name="health"),
    path(
        "projects/<int:project_id>/evaluations/",
        ProjectEvaluationsApi.as_view(),
        name="api-project-evaluations",
    ),
]
