"""Proposing instances: starting a proposal job and what the worker runs.

`proposal_job_start` records a job and enqueues it once the transaction
commits. `proposal_job_run` (the worker task's body, a plain function)
proposes on each image in turn with the project's engine (worker/proposals.py)
and counts progress on the job. `image_proposals_replace` stores one image's
proposals as Instance rows in the "proposed" state, authorless, in place of
the image's previous proposals.

Curated instances win: an accepted instance is never changed or deleted
here, a proposal more than half covered by accepted instances is dropped,
and accepted pixels are cut out of the others (worker.proposals.exclude_curated).
That check reads the accepted instances inside the transaction that writes,
with the image row locked, so an instance accepted meanwhile is respected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.access import visible_projects
from backend.projects.models import Label, Project
from backend.segmentation.embedding_compute import embedding_complete
from backend.segmentation.engines import engine_for
from backend.segmentation.models import ProposalJob
from backend.segmentation.selectors import engine_spec_for_project
from worker import rle
from worker.engines.base import MaskResult
from worker.engines.spec import EngineSpec
from worker.proposals import ProposalSettings, exclude_curated, propose

logger = logging.getLogger(__name__)

MAX_COVERED_BY_CURATED = 0.5  # a proposal more covered than this duplicates curated work


@transaction.atomic
def proposal_job_start(
    *,
    project: Project,
    user: AbstractBaseUser,
    image: Image | None = None,
    label: Label | None = None,
    options: dict[str, Any] | None = None,
) -> ProposalJob:
    """Record a job proposing on `image` (or every image of `project`) and
    enqueue it after the commit. Proposals get `label`, else the project's first."""
    if image is not None and image.project_id != project.pk:
        raise ServiceError("The image belongs to another project.")
    if label is None:
        label = project.labels.order_by("order", "id").first()
        if label is None:
            raise ServiceError("The project has no labels: add one for the proposals.")
    elif label.project_id != project.pk:
        raise ServiceError("The label belongs to another project.")
    try:
        checked = ProposalSettings.from_options(options or {})
    except ValueError as exc:
        raise ServiceError(f"options: {exc}.") from exc
    total = 1 if image is not None else project.images.count()
    if total == 0:
        raise ServiceError("The project has no images to propose instances on.")
    job = ProposalJob.objects.create(
        project=project,
        image=image,
        label=label,
        options={k: v for k, v in checked.as_options().items() if k in (options or {})},
        engine_key=engine_spec_for_project(project).key,
        total_images=total,
        created_by=user,
    )
    job_id = job.pk
    transaction.on_commit(lambda: _enqueue(job_id))
    return job


def _enqueue(job_id: int) -> None:
    from backend.segmentation.proposal_tasks import run_proposal_job

    try:
        run_proposal_job.delay(job_id)
    except Exception as exc:
        # Never run it inline: the job says why nothing happens instead.
        logger.exception("could not enqueue proposal job %s", job_id)
        _finish(job_id, status=ProposalJob.Status.FAILED, error=f"The worker queue is down: {exc}")


def proposal_job_run(*, job: ProposalJob) -> None:
    """Propose on each of the job's images, recording progress; a failing
    image is skipped and named in `error`, and then the job ends failed."""
    claimed = _claim(job.pk)
    if claimed is None:
        return
    job, images = claimed
    spec = engine_spec_for_project(job.project)
    proposal_settings = ProposalSettings.from_options(job.options)
    errors: list[str] = []
    for image in images:
        created = 0
        try:
            if Image.objects.filter(pk=image.pk).exists():  # else deleted meanwhile: skip it
                created = image_propose(
                    image=image, spec=spec, label=job.label, proposal_settings=proposal_settings
                )
        except Exception as exc:
            logger.exception("proposals for image %s of job %s failed", image.pk, job.pk)
            errors.append(f"{image.name} (image {image.pk}): {_reason(exc)}")
        ProposalJob.objects.filter(pk=job.pk).update(
            done_images=F("done_images") + 1,
            created_instances=F("created_instances") + created,
            updated_at=timezone.now(),
        )
    if errors:
        _finish(job.pk, status=ProposalJob.Status.FAILED, error="\n".join(errors))
    else:
        _finish(job.pk, status=ProposalJob.Status.DONE)


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"


def _claim(job_id: int) -> tuple[ProposalJob, list[Image]] | None:
    """Mark the job running (from the start again if a lost worker left it
    running) and list its images, or None when it is finished or gone."""
    with transaction.atomic():
        job = (
            ProposalJob.objects.select_for_update(of=("self",))
            .select_related("project", "image", "label", "created_by")
            .filter(pk=job_id)
            .first()
        )
        if job is None or job.status in (ProposalJob.Status.DONE, ProposalJob.Status.FAILED):
            return None
        job.started_at = timezone.now()
        refusal = _refusal(job)
        if refusal:
            job.status = ProposalJob.Status.FAILED
            job.error = refusal
            job.finished_at = job.started_at
            job.save()
            return None
        images = [job.image] if job.image is not None else list(job.project.images.order_by("id"))
        job.status = ProposalJob.Status.RUNNING
        job.total_images, job.done_images, job.created_instances = len(images), 0, 0
        job.engine_key = engine_spec_for_project(job.project).key
        job.error = ""
        job.save()
    return job, images


def _refusal(job: ProposalJob) -> str:
    """Why the job may not run now, or ""."""
    user = job.created_by
    if user is None or not visible_projects(user).filter(pk=job.project_id).exists():
        return "The user who asked for these proposals can no longer see the project."
    if job.label is None:
        return "The label for the proposals was deleted."
    return ""


def _finish(job_id: int, *, status: str, error: str = "") -> None:
    now = timezone.now()
    ProposalJob.objects.filter(pk=job_id).update(
        status=status, error=error[:4000], finished_at=now, updated_at=now
    )


def image_propose(
    *, image: Image, spec: EngineSpec, label: Label, proposal_settings: ProposalSettings
) -> int:
    """Replace the image's proposals with what the engine proposes now;
    returns how many were stored. Computes the embedding if needed."""
    embedding, _ = embedding_complete(image=image, spec=spec)
    engine = engine_for(spec, decoding_only=True)
    masks = propose(engine, embedding, proposal_settings)
    return image_proposals_replace(
        image=image, label=label, masks=masks, min_area=proposal_settings.min_area
    )


@transaction.atomic
def image_proposals_replace(
    *, image: Image, label: Label, masks: Sequence[MaskResult], min_area: int = 1
) -> int:
    """Store `masks` (image frame) as the image's proposed instances, in place
    of its previous proposals, minus what curated instances already hold."""
    if label.project_id != image.project_id:
        raise ServiceError("The label belongs to another project.")
    if Image.objects.select_for_update().filter(pk=image.pk).first() is None:
        return 0  # deleted meanwhile
    curated = _curated_union(image)
    kept = exclude_curated(masks, curated, max_covered=MAX_COVERED_BY_CURATED, min_area=min_area)
    Instance.objects.filter(image=image, state=Instance.State.PROPOSED).delete()
    rows = []
    for mask in kept:
        encoded = rle.encode_crop(mask.mask_crop, mask.x0, mask.y0, image.height, image.width)
        area, bbox = rle.area_and_bbox(encoded)
        rows.append(
            Instance(
                image=image,
                label=label,
                rle=encoded,
                area=area,
                bbox=bbox,
                state=Instance.State.PROPOSED,
                author=None,
            )
        )
    Instance.objects.bulk_create(rows)
    return len(rows)


def _curated_union(image: Image) -> np.ndarray:
    """The bool (H, W) union of the image's accepted instances."""
    encoded = [
        {"size": [image.height, image.width], "counts": counts.encode("ascii")}
        for counts in Instance.objects.filter(
            image=image, state=Instance.State.ACCEPTED
        ).values_list("rle__counts", flat=True)
    ]
    if not encoded:
        return np.zeros((image.height, image.width), dtype=bool)
    merged = coco_mask.merge(encoded, intersect=0)
    return rle.decode({"size": [image.height, image.width], "counts": merged["counts"]})
