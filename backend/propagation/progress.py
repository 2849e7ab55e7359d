"""A propagation job told to everyone who has its image open: each change
of its status or progress goes to the image's group as a "propagation"
event carrying the job's JSON. Each plane's new instance reaches that
plane's editors as an ordinary instance event."""

from __future__ import annotations

from backend.common.image_events import publish
from backend.propagation.models import PropagationJob
from backend.propagation.serializers import propagation_job_json


def propagation_job_tell(job_id: int) -> None:
    job = PropagationJob.objects.select_related("label", "created_by").filter(pk=job_id).first()
    if job is not None:
        publish(job.image_id, {"kind": "propagation", "job": propagation_job_json(job)})
