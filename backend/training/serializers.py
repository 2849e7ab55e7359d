"""The JSON of training jobs and model versions (docs/api.md)."""

from __future__ import annotations

from typing import Any

from backend.training.models import ModelVersion, TrainingJob


def training_job_json(job: TrainingJob) -> dict[str, Any]:
    version = getattr(job, "version", None)
    return {
        "id": job.pk,
        "project": job.project_id,
        "kind": job.kind,
        "options": job.options,
        "status": job.status,
        "progress": round(job.progress, 4),
        "message": job.message,
        "cancel_requested": job.cancel_requested,
        "base_model": job.base_model,
        "split": job.split,
        "curve": job.curve,
        "before": job.before,
        "after": job.after,
        "seconds": job.seconds,
        "version": version.number if version is not None else None,
        "error": job.error,
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def model_version_json(version: ModelVersion, current_model: str) -> dict[str, Any]:
    return {
        "version": version.number,
        "kind": version.kind,
        "model": version.model.name,
        "sha256": version.model.sha256,
        "base_model": version.base_model,
        "figures": version.figures,
        "before": version.before,
        "better": version.better,
        "in_use": version.model.name == current_model,
        "training_job": version.job_id,
        "created_at": version.created_at.isoformat(),
        "adopted_at": version.adopted_at.isoformat() if version.adopted_at else None,
    }
