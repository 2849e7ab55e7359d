from django.urls import path

from backend.segmentation.apis import HealthApi, ModelListApi
from backend.segmentation.evaluation_apis import ProjectEvaluationsApi
from backend.segmentation.proposal_apis import (
    ImageProposalsApi,
    ProjectProposalsApi,
    ProposalJobApi,
)

urlpatterns = [
    path("health/", HealthApi.as_view(), name="health"),
    path("models/", ModelListApi.as_view(), name="api-models"),
    path(
        "projects/<int:project_id>/evaluations/",
        ProjectEvaluationsApi.as_view(),
        name="api-project-evaluations",
    ),
    path(
        "images/<int:image_id>/proposals/", ImageProposalsApi.as_view(), name="api-image-proposals"
    ),
    path(
        "projects/<int:project_id>/proposals/",
        ProjectProposalsApi.as_view(),
        name="api-project-proposals",
    ),
    path("proposal-jobs/<int:job_id>/", ProposalJobApi.as_view(), name="api-proposal-job"),
]
