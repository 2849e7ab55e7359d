"""Who holds a connection to an image, as far as deciding which of the
image's changes they are told of: the same rules as the REST API's (a
person's set: `sees_set`; the curated set: `curated_visible`), read once
when the connection opens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.annotations.selectors import curated_visible, sees_set
from backend.images.models import Image
from backend.projects.permissions import project_role


@dataclass(frozen=True)
class Audience:
    user_id: int
    username: str
    role: str
    blind: bool
    sees_curated: bool

    def may_see(self, event: dict[str, Any]) -> bool:
        """May this person be told of `event` (an instance event of the image)?"""
        if event.get("assignment") is None:
            return self.sees_curated
        return sees_set(
            user_id=self.user_id,
            role=self.role,
            blind=self.blind,
            annotator_id=event.get("set_annotator") or 0,
        )


def audience_for(*, user: Any, image: Image) -> Audience:
    return Audience(
        user_id=user.pk,
        username=user.get_username(),
        role=project_role(project=image.project, user=user) or "",
        blind=image.project.blind,
        sees_curated=curated_visible(user=user, image=image),
    )
