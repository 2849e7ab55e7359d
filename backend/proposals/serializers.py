"""What proposal jobs look like on the wire (docs/api.md): the start input and a job's JSON."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.annotations.serializers import LabelRefField
from backend.proposals.models import ProposalJob


class ProposalStartInput(serializers.Serializer):
    label = LabelRefField(required=False)
    options = serializers.DictField(required=False)


def proposal_job_json(job: ProposalJob) -> dict[str, Any]:
    label, created_by = job.label, job.created_by
    return {
        "id": job.pk,
        "project": job.project_id,
        "image": job.image_id,
        "label": label.name if label is not None else None,
        "label_id": job.label_id,
        "options": job.options,
        "engine_key": job.engine_key,
        "status": job.status,
        "total_images": job.total_images,
        "done_images": job.done_images,
        "created_instances": job.created_instances,
        "error": job.error,
        "created_by": created_by.get_username() if created_by is not None else None,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
