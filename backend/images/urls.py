from django.urls import path

from backend.images import apis

urlpatterns = [
    path(
        "projects/<int:project_id>/images/",
        apis.ProjectImagesApi.as_view(),
        name="api-project-images",
    ),
    path("images/<int:image_id>/", apis.ImageDetailApi.as_view(), name="api-image"),
    path(
        "images/<int:image_id>/display.png",
        apis.ImageDisplayApi.as_view(),
        name="api-image-display",
    ),
]
