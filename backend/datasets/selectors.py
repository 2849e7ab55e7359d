"""Reading exports: one a user may see (else 404), a project's recent ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet
from django.http import Http404

from backend.datasets.exporting import export_may_download
from backend.datasets.models import Export
from backend.projects.access import visible_or_404
from backend.projects.models import Project

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

RECENT_EXPORTS = 20


def export_for_user(user: AnyUser, export_id: int) -> Export:
    """An export its maker, or a lead of its project, asks for; to anyone else
    it does not exist (it may hold what only they may see)."""
    objects = Export.objects.select_related("project", "created_by")
    export: Export = visible_or_404(user, objects, export_id, via="project", what="export")
    if not export_may_download(export=export, user=user):
        raise Http404("No such export.")
    return export


def export_list(*, project: Project, user: AnyUser) -> list[Export]:
    recent: QuerySet[Export] = project.exports.select_related("project", "created_by")
    return [e for e in recent[: RECENT_EXPORTS * 5] if export_may_download(export=e, user=user)][
        :RECENT_EXPORTS
    ]
