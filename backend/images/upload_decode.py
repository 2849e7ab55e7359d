"""Written uploads to stored images: DICOM slices of one series (sent
together, or in one zip) become one stack, every other file is read alone.

Order is kept: the images come in the order their files were sent, a
series where its first slice was. A file or series that is refused raises
a ServiceError naming it; what was stored for the request is then removed.
"""

from __future__ import annotations

from backend.common.errors import ServiceError
from backend.images.files.dicom_series import series_uid
from backend.images.files.sources import DICOM, DecodeError
from backend.images.upload_files import StoredFile, WrittenFile, series_store, upload_store
from backend.projects.models import Project


def written_decode(*, project: Project, written: list[WrittenFile]) -> list[StoredFile]:
    """Every written file decoded and stored (see the module docstring)."""
    groups: list[list[WrittenFile]] = []
    series: dict[str, list[WrittenFile]] = {}
    for item in written:
        uid = series_uid(item.path) if item.fmt == DICOM else None
        if uid is None:
            groups.append([item])
        elif uid in series:
            series[uid].append(item)
        else:
            series[uid] = [item]
            groups.append(series[uid])
    stored: list[StoredFile] = []
    try:
        for group in groups:
            stored.append(_group_store(project, group))
    except BaseException:
        for done in stored:
            done.remove()
        raise
    return stored


def _group_store(project: Project, group: list[WrittenFile]) -> StoredFile:
    first = group[0]
    name = first.name if len(group) == 1 else f"{first.name} (series of {len(group)} files)"
    try:
        if len(group) == 1:
            return upload_store(project=project, written=first)
        return series_store(project=project, files=group, name=name)
    except DecodeError as exc:
        raise ServiceError(f"{name}: {exc}") from exc
