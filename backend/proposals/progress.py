"""A proposal job on one image, told to everyone who has the image open:
each change of its status or progress goes to the image's group as a
"proposals" event carrying the job's JSON (what `GET /api/proposals/{id}/`
answers). A job over the whole project is not told image by image: each
image's stored proposals reach its editors as the "instances" event
(backend/annotations/services/proposed.py)."""

from __future__ import annotations

from backend.common.image_events import publish
from backend.proposals.models import ProposalJob
from backend.proposals.serializers import proposal_job_json


def proposal_job_tell(job_id: int) -> None:
    """Tell the job's image (if it has one) of its current state, on commit."""
    job = ProposalJob.objects.select_related("label", "created_by").filter(pk=job_id).first()
    if job is not None and job.image_id is not None:
        publish(job.image_id, {"kind": "proposals", "job": proposal_job_json(job)})
