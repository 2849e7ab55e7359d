"""What the worker runs for a proposal job (the task's body, a plain function).

`proposal_job_run` proposes on each image in turn with the project's engine
(worker/proposals/pipeline.py) and counts progress on the job; the
annotations app stores each image's proposals
(backend/annotations/services/proposed.py), where curated instances win.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backend.annotations.services.proposed import proposed_instances_replace
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.access import visible_projects
from backend.projects.models import Label
from backend.proposals.models import ProposalJob
from backend.proposals.progress import proposal_job_tell
from backend.segmentation.compute import embedding_complete
from backend.segmentation.engines import engine_for
from backend.segmentation.selectors import engine_spec_for_project
from worker.engines.proposing import ProposalSettings
from worker.engines.spec import EngineSpec
from worker.proposals.pipeline import propose

logger = logging.getLogger(__name__)


def proposal_job_run(*, job: ProposalJob) -> None:
    """Propose on each of the job's images, recording progress; a failing
    image is skipped and named in `error`, and then the job ends failed."""
    claimed = _claim(job.pk)
    proposal_job_tell(job.pk)  # running, or refused
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
        if job.image_id is not None:
            proposal_job_tell(job.pk)
    if errors:
        proposal_job_finish(
            job_id=job.pk, status=ProposalJob.Status.FAILED, error="\n".join(errors)
        )
    else:
        proposal_job_finish(job_id=job.pk, status=ProposalJob.Status.DONE)


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


def proposal_job_finish(*, job_id: int, status: str, error: str = "") -> None:
    now = timezone.now()
    ProposalJob.objects.filter(pk=job_id).update(
        status=status, error=error[:4000], finished_at=now, updated_at=now
    )
    proposal_job_tell(job_id)


def image_propose(
    *, image: Image, spec: EngineSpec, label: Label, proposal_settings: ProposalSettings
) -> int:
    """Replace the image's proposals with what the engine proposes now;
    returns how many were stored. Computes the embedding if needed."""
    embedding, _ = embedding_complete(image=image, spec=spec)
    engine = engine_for(spec, decoding_only=True)
    masks = propose(engine, embedding, proposal_settings)
    return proposed_instances_replace(
        image=image, label=label, masks=masks, min_area=proposal_settings.min_area
    )
