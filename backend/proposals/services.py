"""Starting a proposal job: the job is recorded and enqueued once the
transaction commits; what the worker then runs is run.py."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.models import Label, Project
from backend.projects.permissions import Action, project_require
from backend.proposals.models import ProposalJob
from backend.proposals.progress import proposal_job_tell
from backend.proposals.run import proposal_job_finish
from backend.proposals.tasks import run_proposal_job
from backend.segmentation.selectors import engine_spec_for_project
from worker.engines.proposing import ProposalSettings

logger = logging.getLogger(__name__)


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
    project_require(project=project, user=user, action=Action.PROPOSE)
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
    proposal_job_tell(job_id)  # queued, for everyone on the image
    transaction.on_commit(lambda: _enqueue(job_id))
    return job


def _enqueue(job_id: int) -> None:
    try:
        run_proposal_job.delay(job_id)
    except Exception as exc:
        # Never run it inline: the job says why nothing happens instead.
        logger.exception("could not enqueue proposal job %s", job_id)
        proposal_job_finish(
            job_id=job_id,
            status=ProposalJob.Status.FAILED,
            error=f"The worker queue is down: {exc}",
        )
