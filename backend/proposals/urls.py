from django.urls import path

from backend.proposals.apis import ImageProposalsApi, ProjectProposalsApi, ProposalJobApi

urlpatterns = [
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
