"""What propagation jobs look like on the wire (docs/api.md)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from backend.propagation.models import PropagationJob


class PropagateInput(serializers.Serializer):
    instance = serializers.IntegerField()
    direction = serializers.ChoiceField(
        choices=PropagationJob.Direction.values, default=PropagationJob.Direction.BOTH
    )


def propagation_job_json(job: PropagationJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "project": job.project_id,
        "image": job.image_id,
        "instance": job.instance_id,
        "object": job.object_key,
        "label": job.label.name if job.label is not None else None,
        "direction": job.direction,
        "engine_key": job.engine_key,
        "status": job.status,
        "total_planes": job.total_planes,
        "done_planes": job.done_planes,
        "created_instances": job.created_instances,
        "stopped": job.stopped,
        "error": job.error,
        "created_by": job.created_by.get_username() if job.created_by is not None else None,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
