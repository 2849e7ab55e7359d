from django.urls import path

from backend.evaluations.apis import EvaluationApi, ProjectEvaluationsApi

urlpatterns = [
    path(
        "projects/<int:project_id>/evaluations/",
        ProjectEvaluationsApi.as_view(),
        name="api-project-evaluations",
    ),
    path("evaluations/<int:evaluation_id>/", EvaluationApi.as_view(), name="api-evaluation"),
]
