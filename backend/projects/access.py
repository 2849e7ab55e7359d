"""The one place that decides who may see what.

Every REST view, the WebSocket consumer and every task reaches projects,
images and instances through these functions. A user outside a project gets
Http404, exactly as if the object did not exist, so outsiders learn nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from backend.projects.models import Project

if TYPE_CHECKING:
    from typing import TypeAlias

    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from backend.annotations.models import Instance
    from backend.images.models import Image

    AnyUser: TypeAlias = AbstractBaseUser | AnonymousUser


def visible_projects(user: AnyUser) -> QuerySet[Project]:
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user)


def project_for_user(user: AnyUser, project_id: int) -> Project:
    project = visible_projects(user).filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project.")
    return project


def image_for_user(user: AnyUser, image_id: int) -> Image:
    from backend.images.models import Image

    image = (
        Image.objects.select_related("project")
        .filter(pk=image_id, project__in=visible_projects(user))
        .first()
    )
    if image is None:
        raise Http404("No such image.")
    return image


def instance_for_user(user: AnyUser, instance_id: int) -> Instance:
    from backend.annotations.models import Instance

    instance = (
        Instance.objects.select_related("image", "label")
        .filter(pk=instance_id, image__project__in=visible_projects(user))
        .first()
    )
    if instance is None:
        raise Http404("No such instance.")
    return instance
