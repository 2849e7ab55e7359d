"""Writes for instances: create, edit (mask and/or label), accept a proposal,
delete and restore. Each change bumps the instance's version and writes an
InstanceHistory row in the same transaction; edits and deletes given a
`version` refuse to apply over a newer one (InstanceConflictError, HTTP 409)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status

from backend.annotations.models import Assignment, Instance, InstanceHistory, Origin
from backend.annotations.services.history import history_record, soft_delete_recorded
from backend.annotations.services.picked import picked_provenance
from backend.annotations.services.sets import write_require
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.models import Label
from backend.projects.permissions import Action, project_require
from worker import rle as rle_codec

MAX_COUNTS_LENGTH = 8 * 1024 * 1024


class InstanceConflictError(ServiceError):
    """The change was made on an older version; `instance` is the server's current one."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(self, *, instance: Instance, given: int) -> None:
        super().__init__(
            f"Instance {instance.pk} changed meanwhile: you edited version {given}, "
            f"the server has version {instance.version}."
        )
        self.instance = instance


@dataclass(frozen=True)
class CheckedMask:
    """A client's mask, validated: its RLE in the image frame, area and bbox."""

    rle: dict[str, Any]
    area: int
    bbox: list[int]


def mask_check(*, image: Image, rle: Any) -> CheckedMask:
    """`rle` checked as a non-empty COCO compressed RLE of `image`, in time
    linear in its length (worker/rle.py), or ServiceError. Callers check
    before any transaction, so a malformed mask never holds a lock."""
    counts = rle.get("counts") if isinstance(rle, dict) else None
    if isinstance(counts, str) and len(counts) > MAX_COUNTS_LENGTH:
        raise ServiceError("rle: the mask counts are too long.")
    try:
        rle_codec.validate(rle, image.height, image.width)
    except ValueError as exc:
        raise ServiceError(f"rle: {exc}.") from exc
    checked = {"size": [image.height, image.width], "counts": rle["counts"]}
    area, bbox = rle_codec.area_and_bbox(checked)
    return CheckedMask(rle=checked, area=area, bbox=bbox)


def _checked_label(*, image: Image, label: Label) -> Label:
    if label.project_id != image.project_id:
        raise ServiceError("The label belongs to another project.")
    return label


def _require(*, instance: Instance, user: AbstractBaseUser, deleting: bool = False) -> None:
    """May `user` change the instance: the rules of its set (or of the curated
    set), and, to delete someone else's instance, an owner's right."""
    write_require(image=instance.image, assignment=instance.assignment, user=user)
    mine = instance.author_id is None or instance.author_id == user.pk
    if deleting and not mine:
        project_require(project=instance.image.project, user=user, action=Action.DELETE_OTHERS)


def _locked(instance: Instance) -> Instance:
    """The instance's row, locked until the transaction ends (deleted or not)."""
    locked = (
        Instance.all_objects.select_for_update(of=("self",))
        .filter(pk=instance.pk)
        .select_related("image", "label", "author")
        .first()
    )
    if locked is None:
        raise ServiceError("No such instance.", status_code=status.HTTP_404_NOT_FOUND)
    return locked


def _live_at(*, instance: Instance, version: int | None) -> Instance:
    """The locked live instance, refusing a change made on another version."""
    locked = _locked(instance)
    if locked.deleted_at is not None:
        raise ServiceError("No such instance.", status_code=status.HTTP_404_NOT_FOUND)
    if version is not None and version != locked.version:
        raise InstanceConflictError(instance=locked, given=version)
    return locked


def instance_create(
    *,
    image: Image,
    user: AbstractBaseUser,
    label: Label,
    rle: Any,
    state: str = Instance.State.ACCEPTED,
    client_key: str = "",
    assignment: Assignment | None = None,
) -> Instance:
    """Save a mask (COCO compressed RLE in the image frame) as an instance
    (see `instance_create_once`)."""
    return instance_create_once(
        image=image,
        user=user,
        label=label,
        rle=rle,
        state=state,
        client_key=client_key,
        assignment=assignment,
    )[0]


def instance_create_once(
    *,
    image: Image,
    user: AbstractBaseUser,
    label: Label,
    rle: Any,
    state: str = Instance.State.ACCEPTED,
    client_key: str = "",
    assignment: Assignment | None = None,
    sources: list[int] | None = None,
    origin: str = Origin.MANUAL,
) -> tuple[Instance, bool]:
    """Save a mask as an instance; (instance, created). A `client_key`
    already saved on the image (a create sent again, or several times at
    once) answers that instance, deleted or not, and saves nothing. Clients
    create accepted instances only: proposals are the server's
    (backend/annotations/services/proposed.py). `assignment`: the person's
    set it goes into (None: the image's curated set). `sources`: the
    instances of people's sets a reviewer picked or merged it from (origin
    `review`); else `origin` says how the client made it (manual, prompt)."""
    if origin not in (Origin.MANUAL, Origin.PROMPT):
        raise ServiceError('origin must be "manual" or "prompt".')
    if assignment is not None and assignment.image_id != image.pk:
        raise ServiceError("The assignment is for another image.")
    write_require(image=image, assignment=assignment, user=user)
    picked = (
        picked_provenance(image=image, user=user, sources=sources, assignment=assignment)
        if sources
        else None
    )
    mask = mask_check(image=image, rle=rle)
    label = _checked_label(image=image, label=label)
    if state not in Instance.State.values:
        raise ServiceError(f"state must be one of: {', '.join(Instance.State.values)}.")
    if client_key:
        found = _by_client_key(image=image, client_key=client_key)
        if found is not None:
            return found, False
    try:
        with transaction.atomic():
            instance = Instance.objects.create(
                image=image,
                label=label,
                rle=mask.rle,
                area=mask.area,
                bbox=mask.bbox,
                state=state,
                author=user,
                client_key=client_key,
                assignment=assignment,
                **(
                    {"origin": Origin.REVIEW, "sources": picked.sources, "support": picked.support}
                    if picked
                    else {"origin": origin}
                ),
            )
            history_record(instance=instance, user=user, action=InstanceHistory.Action.CREATE)
    except IntegrityError:
        # The same key saved meanwhile by a concurrent request.
        found = _by_client_key(image=image, client_key=client_key) if client_key else None
        if found is None:
            raise
        return found, False
    return instance, True


def _by_client_key(*, image: Image, client_key: str) -> Instance | None:
    return (
        Instance.all_objects.select_related("image", "label", "author")
        .filter(image=image, client_key=client_key)
        .first()
    )


def instance_update(
    *,
    instance: Instance,
    user: AbstractBaseUser,
    version: int | None,
    label: Label | None = None,
    rle: Any = None,
) -> Instance:
    """Give the instance a new mask and/or label. With `version`, refuse
    (InstanceConflictError) unless it is the current one; without, apply anyway."""
    _require(instance=instance, user=user)
    if label is None and rle is None:
        raise ServiceError("Give a label or an rle to change.")
    # The image's size never changes: the mask is checked before the lock.
    mask = None if rle is None else mask_check(image=instance.image, rle=rle)
    with transaction.atomic():
        locked = _live_at(instance=instance, version=version)
        if label is not None:
            locked.label = _checked_label(image=locked.image, label=label)
        if mask is not None:
            locked.rle, locked.area, locked.bbox = mask.rle, mask.area, mask.bbox
        locked.version += 1
        locked.save(update_fields=["label", "rle", "area", "bbox", "version", "updated_at"])
        history_record(instance=locked, user=user, action=InstanceHistory.Action.UPDATE)
    return locked


def instance_relabel(*, instance: Instance, user: AbstractBaseUser, label: Label) -> Instance:
    """Give the instance another label of its project; bumps its version."""
    return instance_update(instance=instance, user=user, version=None, label=label)


@transaction.atomic
def instance_accept(*, instance: Instance, user: AbstractBaseUser) -> Instance:
    """Make a proposed instance curated: accepted, authored by `user`, its
    version bumped. Accepting an accepted instance changes nothing."""
    _require(instance=instance, user=user)
    # Locking the image orders this after a proposal run replacing the image's
    # proposals (services/proposed.py), or that run after this.
    Image.objects.select_for_update().filter(pk=instance.image_id).first()
    locked = Instance.objects.select_for_update().filter(pk=instance.pk).first()
    if locked is None:
        raise ServiceError(
            "This proposal was replaced by a newer proposal run.",
            status_code=status.HTTP_404_NOT_FOUND,
        )
    if locked.state == Instance.State.PROPOSED:
        locked.state = Instance.State.ACCEPTED
        locked.author = user
        locked.version += 1
        locked.save(update_fields=["state", "author", "version", "updated_at"])
        history_record(instance=locked, user=user, action=InstanceHistory.Action.ACCEPT)
    return Instance.objects.select_related("image", "label", "author").get(pk=locked.pk)


@transaction.atomic
def instance_delete(
    *, instance: Instance, user: AbstractBaseUser, version: int | None = None
) -> Instance:
    """Delete softly: the instance leaves lists and exports but can be restored.
    Someone else's instance only an owner may delete; a machine proposal
    (no author) anyone who annotates."""
    _require(instance=instance, user=user, deleting=True)
    locked = _live_at(instance=instance, version=version)
    soft_delete_recorded(instance=locked, user=user, at=timezone.now())
    return locked


@transaction.atomic
def instance_restore(*, instance: Instance, user: AbstractBaseUser) -> Instance:
    """Bring a deleted instance back, same id; restoring a live one changes nothing."""
    _require(instance=instance, user=user)
    locked = _locked(instance)
    if locked.deleted_at is not None:
        locked.deleted_at = None
        locked.version += 1
        locked.save(update_fields=["deleted_at", "version", "updated_at"])
        history_record(instance=locked, user=user, action=InstanceHistory.Action.RESTORE)
    return locked
