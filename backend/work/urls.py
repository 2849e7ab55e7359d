from django.urls import path

from backend.work import apis

urlpatterns = [
    path(
        "projects/<int:project_id>/queue/next/", apis.QueueNextApi.as_view(), name="api-queue-next"
    ),
    path(
        "projects/<int:project_id>/review/next/",
        apis.ReviewNextApi.as_view(),
        name="api-review-next",
    ),
    path(
        "projects/<int:project_id>/assignments/",
        apis.ProjectAssignmentsApi.as_view(),
        name="api-project-assignments",
    ),
    path(
        "projects/<int:project_id>/progress/",
        apis.ProjectProgressApi.as_view(),
        name="api-project-progress",
    ),
    path("assignments/<int:assignment_id>/", apis.AssignmentApi.as_view(), name="api-assignment"),
    path(
        "assignments/<int:assignment_id>/submit/",
        apis.AssignmentSubmitApi.as_view(),
        name="api-assignment-submit",
    ),
    path(
        "assignments/<int:assignment_id>/skip/",
        apis.AssignmentSkipApi.as_view(),
        name="api-assignment-skip",
    ),
    path(
        "assignments/<int:assignment_id>/accept/",
        apis.AssignmentAcceptApi.as_view(),
        name="api-assignment-accept",
    ),
    path(
        "assignments/<int:assignment_id>/return/",
        apis.AssignmentReturnApi.as_view(),
        name="api-assignment-return",
    ),
    path(
        "assignments/<int:assignment_id>/activity/",
        apis.AssignmentActivityApi.as_view(),
        name="api-assignment-activity",
    ),
]
