from django.urls import path

from backend.annotations import apis

urlpatterns = [
    path(
        "images/<int:image_id>/instances/",
        apis.ImageInstancesApi.as_view(),
        name="api-image-instances",
    ),
    path("instances/<int:instance_id>/", apis.InstanceDetailApi.as_view(), name="api-instance"),
    path(
        "instances/<int:instance_id>/accept/",
        apis.InstanceAcceptApi.as_view(),
        name="api-instance-accept",
    ),
    path(
        "instances/<int:instance_id>/restore/",
        apis.InstanceRestoreApi.as_view(),
        name="api-instance-restore",
    ),
    path(
        "instances/<int:instance_id>/history/",
        apis.InstanceHistoryApi.as_view(),
        name="api-instance-history",
    ),
    path(
        "projects/<int:project_id>/export/",
        apis.ProjectExportApi.as_view(),
        name="api-project-export",
    ),
    path(
        "projects/<int:project_id>/labels/",
        apis.ProjectLabelsApi.as_view(),
        name="api-project-labels",
    ),
    path("labels/<int:label_id>/", apis.LabelDetailApi.as_view(), name="api-label"),
]
