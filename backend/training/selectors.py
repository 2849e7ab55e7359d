"""Reading training jobs and versions: a job a user may see (else 404), a
project's recent jobs and its versions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import Http404

from backend.projects.access import visible_or_404
from backend.projects.models import Project
from backend.training.models import ModelVersion, TrainingJob

if TYPE_CHECKING:
    from backend.projects.access import AnyUser

RECENT_JOBS = 20


def training_job_for_user(user: AnyUser, job_id: int) -> TrainingJob:
    objects = TrainingJob.objects.select_related("project", "created_by")
    job: TrainingJob = visible_or_404(user, objects, job_id, via="project", what="training job")
    return job


def training_jobs(*, project: Project) -> list[TrainingJob]:
    return list(project.training_jobs.select_related("created_by", "version")[:RECENT_JOBS])


def model_versions(*, project: Project) -> list[ModelVersion]:
    return list(project.model_versions.select_related("model", "job"))


def model_version(*, project: Project, number: int) -> ModelVersion:
    found = project.model_versions.select_related("model", "project").filter(number=number).first()
    if found is None:
        raise Http404(f"Project {project.pk} has no model version {number}.")
    return found
