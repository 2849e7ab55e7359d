from django.urls import path

from backend.evaluations.apis import ProjectEvaluationsApi

urlpatterns = [
    path(
        "projects/<int:project_id>/evaluations/",
        ProjectEvaluationsApi.as_view(),
        name="api-project-evaluations",
    ),
]
