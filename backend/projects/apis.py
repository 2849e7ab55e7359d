"""REST endpoints for projects and their members: validate, call a service, render."""

from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.inputs import parse_input
from backend.projects.access import project_for_user
from backend.projects.selectors import (
    member_list,
    membership_of,
    memberships_of,
    project_list,
    project_stats,
)
from backend.projects.serializers import (
    MemberAddInput,
    ProjectCreateInput,
    ProjectUpdateInput,
    member_json,
    project_json,
)
from backend.projects.services import (
    project_create,
    project_leave,
    project_member_add,
    project_member_remove,
    project_update,
)


class ProjectListApi(APIView):
    def get(self, request: Request) -> Response:
        projects = project_list(user=request.user)
        mine = memberships_of(user=request.user)
        return Response(
            [project_json(p, project_stats(project=p), mine.get(p.pk)) for p in projects]
        )

    def post(self, request: Request) -> Response:
        data = parse_input(ProjectCreateInput, request.data)
        project = project_create(
            user=request.user, name=data["name"], labels=data["labels"], model=data["model"]
        )
        mine = membership_of(project=project, user=request.user)
        return Response(
            project_json(project, project_stats(project=project), mine),
            status=status.HTTP_201_CREATED,
        )


class ProjectDetailApi(APIView):
    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        mine = membership_of(project=project, user=request.user)
        return Response(project_json(project, project_stats(project=project), mine))

    def patch(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = parse_input(ProjectUpdateInput, request.data)
        project = project_update(
            project=project,
            user=request.user,
            name=data.get("name"),
            model=data.get("model"),
            workflow=dict(data["workflow"]) if "workflow" in data else None,
        )
        mine = membership_of(project=project, user=request.user)
        return Response(project_json(project, project_stats(project=project), mine))


class ProjectMembersApi(APIView):
    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        return Response([member_json(m) for m in member_list(project=project)])

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = parse_input(MemberAddInput, request.data)
        membership, created = project_member_add(
            project=project, user=request.user, username=data["username"], role=data["role"]
        )
        return Response(
            member_json(membership),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ProjectMemberApi(APIView):
    """DELETE -> the member is removed (an owner removes anyone; a member, themselves)."""

    def delete(self, request: Request, project_id: int, username: str) -> Response:
        project = project_for_user(request.user, project_id)
        project_member_remove(project=project, user=request.user, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectLeaveApi(APIView):
    """POST -> the caller is no longer a member (204)."""

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        project_leave(project=project, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
