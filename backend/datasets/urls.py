from django.urls import path

from backend.datasets.apis import (
    ExportApi,
    ExportDownloadApi,
    ProjectExportsApi,
    ProjectImportsApi,
    ProjectSplitsApi,
)

urlpatterns = [
    path(
        "projects/<int:project_id>/exports/",
        ProjectExportsApi.as_view(),
        name="api-project-exports",
    ),
    path("exports/<int:export_id>/", ExportApi.as_view(), name="api-export"),
    path(
        "exports/<int:export_id>/download/", ExportDownloadApi.as_view(), name="api-export-download"
    ),
    path(
        "projects/<int:project_id>/splits/", ProjectSplitsApi.as_view(), name="api-project-splits"
    ),
    path(
        "projects/<int:project_id>/imports/",
        ProjectImportsApi.as_view(),
        name="api-project-imports",
    ),
]
