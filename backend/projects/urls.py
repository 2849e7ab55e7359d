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
    # Before members/<username>/, which would take "bulk" for a username.
    path(
        "projects/<int:project_id>/members/bulk/",
        apis.ProjectMembersBulkApi.as_view(),
        name="api-project-members-bulk",
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
    path(
        "projects/<int:project_id>/invitations/",
        apis.ProjectInvitationsApi.as_view(),
        name="api-project-invitations",
    ),
    path(
        "projects/<int:project_id>/invitations/<str:code>/",
        apis.ProjectInvitationApi.as_view(),
        name="api-project-invitation",
    ),
    path("join/<str:code>/", apis.JoinApi.as_view(), name="api-join"),
]
