"""Page views: thin shells that authorize, then let the ES modules load the data.

Every page needs a login and reaches its project through backend.projects.access,
so a user outside the project gets 404. The pages set the CSRF cookie because
their scripts call the REST API with X-CSRFToken.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from backend.annotations.models import Assignment
from backend.annotations.selectors import assignment_for_user
from backend.images.models import Image
from backend.images.selectors import image_for_user
from backend.projects.access import project_for_user, visible_projects
from backend.projects.models import Membership
from backend.projects.permissions import Action, project_may
from backend.projects.selectors import membership_of, memberships_of
from backend.projects.serializers import added_by_name
from backend.segmentation.embeddings import embeddings_requeue_stale


@login_required
@ensure_csrf_cookie
def project_list(request: HttpRequest) -> HttpResponse:
    projects = list(
        visible_projects(request.user)
        .annotate(image_count=Count("images", distinct=True))
        .prefetch_related("labels")
        .order_by("-id")
    )
    mine = memberships_of(user=request.user)
    for project in projects:
        project.added_by_name = added_by_name(mine.get(project.pk))
    return render(request, "frontend/project_list.html", {"projects": projects})


@login_required
@ensure_csrf_cookie
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_user(request.user, project_id)
    embeddings_requeue_stale(project=project)
    mine = membership_of(project=project, user=request.user)
    return render(
        request,
        "frontend/project_detail.html",
        {
            "project": project,
            "is_owner": mine is not None and mine.role == Membership.Role.OWNER,
            "role": mine.role if mine is not None else "",
            "added_by": added_by_name(mine),
        },
    )


@login_required
def project_quality(request: HttpRequest, project_id: int) -> HttpResponse:
    """The annotators' table and plots; its script loads GET /api/projects/{id}/quality/."""
    project = project_for_user(request.user, project_id)
    if not project_may(project=project, user=request.user, action=Action.REVIEW):
        raise PermissionDenied("Only owners and reviewers can see the quality page.")
    return render(request, "frontend/project_quality.html", {"project": project})


@login_required
@ensure_csrf_cookie
def image_editor(request: HttpRequest, image_id: int) -> HttpResponse:
    """?assignment=ID opens a person's set of the image instead of its curated set."""
    image = image_for_user(request.user, image_id)
    assignment = _assignment_of(request, image)
    embeddings_requeue_stale(image=image)
    mine = membership_of(project=image.project, user=request.user)
    context = {
        "image": image,
        "project": image.project,
        "assignment": assignment,
        "role": mine.role if mine is not None else "",
    }
    return render(request, "frontend/image_editor.html", context)


def _assignment_of(request: HttpRequest, image: Image) -> Assignment | None:
    """The set named by ?assignment= on this image, if the caller may see it; else 404."""
    raw = request.GET.get("assignment", "")
    if not raw:
        return None
    if not raw.isdigit():
        raise Http404("No such assignment.")
    assignment = assignment_for_user(request.user, int(raw))
    if assignment.image_id != image.pk:
        raise Http404("No such assignment on this image.")
    return assignment
