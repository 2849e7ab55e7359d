from django.urls import path

from backend.images import apis, display_apis

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
    path("stacks/<int:stack_id>/", apis.StackDetailApi.as_view(), name="api-stack"),
    path(
        "images/<int:image_id>/tiles/<str:level>/<str:tx>/<str:ty>.bin",
        display_apis.ImageTileApi.as_view(),
        name="api-image-tile",
    ),
    path(
        "projects/<int:project_id>/display/",
        display_apis.ProjectDisplayApi.as_view(),
        name="api-project-display",
    ),
    path(
        "projects/<int:project_id>/channel-mapping/",
        display_apis.ProjectChannelMappingApi.as_view(),
        name="api-project-channel-mapping",
    ),
]
