"""The one place that decides who may see what.

Every REST view, the WebSocket consumer and every task reaches a project, or
anything inside one, through `visible_or_404` (each app's selectors name
their objects: images.selectors.image_for_user, annotations.selectors.
instance_for_user, ...). A user outside a project gets Http404, exactly as if
the object did not exist, so outsiders learn nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.http import Http404

from backend.projects.models import Project

if TYPE_CHECKING:
    from typing import TypeAlias

    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser: TypeAlias = AbstractBaseUser | AnonymousUser


def visible_projects(user: AnyUser) -> QuerySet[Project]:
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user)


def visible_or_404(user: AnyUser, objects: QuerySet[Any], pk: int, *, via: str, what: str) -> Any:
    """Object `pk` of `objects` if `user` may see the project it belongs to
    (reached through the lookup `via`, e.g. "image__project"), else
    Http404 "No such <what>." exactly as for an object that does not exist."""
    found = objects.filter(pk=pk, **{f"{via}__in": visible_projects(user)}).first()
    if found is None:
        raise Http404(f"No such {what}.")
    return found


def project_for_user(user: AnyUser, project_id: int) -> Project:
    return visible_or_404(user, Project.objects.all(), project_id, via="pk", what="project")
