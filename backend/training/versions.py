"""A project's trained versions: adopting one makes it the project's model
(its embeddings are then computed for every image, as for any model
change); every version stays, so the owner can go back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from backend.projects.permissions import Action, project_require
from backend.projects.services import project_update
from backend.training.models import ModelVersion

if TYPE_CHECKING:
    from backend.projects.access import AnyUser


@transaction.atomic
def version_adopt(*, version: ModelVersion, user: AnyUser) -> ModelVersion:
    project_require(project=version.project, user=user, action=Action.TRAIN)
    project_update(project=version.project, user=user, model=version.model.name)
    version.adopted_at = timezone.now()
    version.save(update_fields=["adopted_at"])
    return version
