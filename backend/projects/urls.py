from django.urls import path

from backend.projects import apis

urlpatterns = [
    path("projects/", apis.ProjectListApi.as_view(), name="api-project-list"),
    path("projects/<int:project_id>/", apis.ProjectDetailApi.as_view(), name="api-project"),
    path(
        "projects/<int:project_id>/members/",
        apis.ProjectMembersApi.as_view(),
        name="api-project-members",
    ),
    path(
        "projects/<int:project_id>/members/<str:username>/",
        apis.ProjectMemberApi.as_view(),
        name="api-project-member",
    ),
    path(
        "projects/<int:project_id>/leave/",
        apis.ProjectLeaveApi.as_view(),
        name="api-project-leave",
    ),
]
