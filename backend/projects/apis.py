"""REST endpoints for projects and their members: validate, call a service, render."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.common.inputs import parse_input
from backend.common.pagination import paginate
from backend.common.parsers import BoundedJSONParser, CsvParser, text_read_bounded
from backend.projects.access import project_for_user
from backend.projects.bulk_members import MemberRow, member_rows_from_csv, project_members_bulk_add
from backend.projects.invitations import (
    invitation_create,
    invitation_join,
    invitation_list,
    invitation_revoke,
)
from backend.projects.models import Invitation, Membership, Project
from backend.projects.selectors import (
    member_list,
    members_with_activity,
    membership_of,
    memberships_of,
    project_list,
    project_stats,
)
from backend.projects.serializers import (
    InvitationCreateInput,
    MemberAddInput,
    MemberRoleInput,
    MembersBulkInput,
    ProjectCreateInput,
    ProjectUpdateInput,
    invitation_json,
    member_json,
    project_json,
)
from backend.projects.services import (
    project_create,
    project_leave,
    project_member_add,
    project_member_remove,
    project_member_role_set,
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
            deidentify_dicom=data.get("deidentify_dicom"),
        )
        mine = membership_of(project=project, user=request.user)
        return Response(project_json(project, project_stats(project=project), mine))


def _member_json(project: Project, membership: Membership) -> dict:
    """A member as the list shows them (with their last activity)."""
    return member_json(members_with_activity(project=project, members=[membership])[0])


class ProjectMembersApi(APIView):
    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        members = member_list(project=project)
        return Response(
            paginate(
                request,
                members,
                lambda page: [
                    member_json(m) for m in members_with_activity(project=project, members=page)
                ],
            )
        )

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = parse_input(MemberAddInput, request.data)
        membership, created = project_member_add(
            project=project, user=request.user, username=data["username"], role=data["role"]
        )
        return Response(
            _member_json(project, membership),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ProjectMembersBulkApi(APIView):
    """POST {"members": [{username, email?, role}]}, a text/csv body or a
    multipart `file` -> 201 {"created": [{username, password}], "existing": [...]}."""

    parser_classes = [BoundedJSONParser, CsvParser, MultiPartParser]

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        rows = _member_rows(request)
        result = project_members_bulk_add(project=project, user=request.user, rows=rows)
        created = [{"username": name, "password": password} for name, password in result.created]
        existing = [{"username": name, "role": role} for name, role in result.existing]
        return Response({"created": created, "existing": existing}, status=status.HTTP_201_CREATED)


def _member_rows(request: Request) -> list[MemberRow]:
    if isinstance(request.data, str):
        return member_rows_from_csv(request.data)
    upload = request.FILES.get("file")
    if upload is not None:
        return member_rows_from_csv(text_read_bounded(upload))
    data = parse_input(MembersBulkInput, request.data)
    return [MemberRow(where=f"row {n}", **row) for n, row in enumerate(data["members"], 1)]


class ProjectMemberApi(APIView):
    """PATCH {"role"} -> the member with the new role (owners only);
    DELETE -> the member is removed (an owner removes anyone; a member, themselves)."""

    def patch(self, request: Request, project_id: int, username: str) -> Response:
        project = project_for_user(request.user, project_id)
        data = parse_input(MemberRoleInput, request.data)
        membership = project_member_role_set(
            project=project, user=request.user, username=username, role=data["role"]
        )
        return Response(_member_json(project, membership))

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


def _invitation_json(request: Request, invitation: Invitation) -> dict:
    url = request.build_absolute_uri(reverse("join", args=[invitation.code]))
    return invitation_json(invitation, url=url)


class ProjectInvitationsApi(APIView):
    """GET -> the project's invitation links; POST {"role", "expires_in_days"?,
    "max_uses"?} -> 201 a new one (owners only, both)."""

    def get(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        links = invitation_list(project=project, user=request.user)
        return Response([_invitation_json(request, link) for link in links])

    def post(self, request: Request, project_id: int) -> Response:
        project = project_for_user(request.user, project_id)
        data = parse_input(InvitationCreateInput, request.data)
        invitation = invitation_create(
            project=project,
            user=request.user,
            role=data["role"],
            expires_in_days=data.get("expires_in_days"),
            max_uses=data.get("max_uses"),
        )
        return Response(_invitation_json(request, invitation), status=status.HTTP_201_CREATED)


class ProjectInvitationApi(APIView):
    """DELETE -> the link stops working (204)."""

    def delete(self, request: Request, project_id: int, code: str) -> Response:
        project = project_for_user(request.user, project_id)
        invitation_revoke(project=project, user=request.user, code=code)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JoinApi(APIView):
    """POST -> the caller is a member through the link: 200 {"project", "role"};
    404 for an unknown code, 410 for a revoked, expired or used-up one."""

    def post(self, request: Request, code: str) -> Response:
        membership = invitation_join(code=code, user=request.user)
        return Response({"project": membership.project_id, "role": membership.role})
