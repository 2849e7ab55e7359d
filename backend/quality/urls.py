from django.urls import path

from backend.quality import apis

urlpatterns = [
    path(
        "images/<int:image_id>/agreement/",
        apis.ImageAgreementApi.as_view(),
        name="api-image-agreement",
    ),
    path(
        "images/<int:image_id>/consensus/",
        apis.ImageConsensusApi.as_view(),
        name="api-image-consensus",
    ),
    path(
        "images/<int:image_id>/consensus/resolve/",
        apis.ImageConsensusResolveApi.as_view(),
        name="api-image-consensus-resolve",
    ),
    path(
        "assignments/<int:assignment_id>/reference/",
        apis.AssignmentReferenceApi.as_view(),
        name="api-assignment-reference",
    ),
    path(
        "projects/<int:project_id>/quality/",
        apis.ProjectQualityApi.as_view(),
        name="api-project-quality",
    ),
]
