"""Starting and cancelling training jobs: a job is recorded and enqueued
once the transaction commits; run.py trains. Owners only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from backend.common.enqueue import enqueue_or_fail
from backend.common.errors import ServiceError
from backend.datasets.holdout import validation_split
from backend.projects.models import Project
from backend.projects.permissions import Action, project_require
from backend.segmentation.selectors import engine_spec_for_project
from backend.training.models import TrainingJob
from backend.training.tasks import run_training

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

KINDS = tuple(TrainingJob.Kind.values)
OPTIONS = {
    "pixel-classifier": {"seed"},
    "decoder": {"seed", "epochs", "objects_per_image"},
    "detector": {"seed", "epochs"},
    "lora": {"seed", "epochs", "objects_per_image", "rank"},
}
LIMITS = {"epochs": 50, "objects_per_image": 1000, "rank": 64}
KIND_LIMITS = {"detector": {"epochs": 200}}  # a detector's epoch is a second or two
NEEDS_SAM = {"decoder": "Decoder adaptation", "detector": "A box detector", "lora": "LoRA"}


def training_options(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = data.get("kind")
    if kind not in KINDS:
        raise ServiceError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}.")
    unknown = sorted(set(data) - OPTIONS[str(kind)] - {"kind"})
    if unknown:
        raise ServiceError(f"Unknown training option(s) for {kind}: {', '.join(unknown)}.")
    options: dict[str, Any] = {}
    if "seed" in data:
        seed = data["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ServiceError("seed must be a whole number from 0 to 2147483647.")
        options["seed"] = seed
    for name, most in (LIMITS | KIND_LIMITS.get(str(kind), {})).items():
        if name in data:
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ServiceError(f"{name} must be a whole number from 1 to {most}.")
            options[name] = value
    return str(kind), options


def training_start(*, project: Project, user: AnyUser, data: dict[str, Any]) -> TrainingJob:
    project_require(project=project, user=user, action=Action.TRAIN)
    kind, options = training_options(data)
    validation_split(project=project)  # refuses a project with too few curated images now
    if kind in NEEDS_SAM and not engine_spec_for_project(project).is_sam:
        name = engine_spec_for_project(project).name
        raise ServiceError(f"{NEEDS_SAM[kind]} needs a SAM model; this project uses {name}.")
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        running = TrainingJob.objects.filter(
            project=project, status__in=(TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)
        ).first()
        if running is not None:
            raise ServiceError(
                f"Training job {running.pk} is still {running.status}: wait for it or cancel it.",
                status_code=409,
            )
        job = TrainingJob.objects.create(
            project=project, kind=kind, options=options, created_by=user, message="Queued."
        )
        job_id = job.pk
        transaction.on_commit(lambda: _enqueue(job_id))
    return job


def training_cancel(*, job: TrainingJob, user: AnyUser) -> TrainingJob:
    """Ask a queued or running job to stop; it stops at its next epoch or
    validation image and leaves nothing behind. A finished job is a 409."""
    project_require(project=job.project, user=user, action=Action.TRAIN)
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if job.finished:
            raise ServiceError(f"Training job {job.pk} is already {job.status}.", status_code=409)
        job.cancel_requested = True
        job.message = "Cancelling…"
        job.save(update_fields=["cancel_requested", "message"])
    return job


def _enqueue(job_id: int) -> None:
    enqueue_or_fail(run_training, TrainingJob, job_id, failed=TrainingJob.Status.FAILED)
