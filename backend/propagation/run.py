"""What the worker runs for a propagation job (the task's body).

From the source instance's plane, each neighbouring plane in turn: its
embedding (computed now when missing: the nearest planes first, as the
walk reaches them), one step of worker/propagation.py, and the mask saved
as an instance of the same object (backend/annotations/services/
propagated.py). A direction stops at the stack's end, where the step says
the object vanished, leaked or lost the model's confidence, or at a plane
that already holds the object (someone's work is never written over).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backend.annotations.models import Instance
from backend.annotations.services.propagated import object_on_plane, propagated_create
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.access import visible_projects
from backend.propagation.models import PropagationJob
from backend.propagation.progress import propagation_job_tell
from backend.segmentation.compute import embedding_complete
from backend.segmentation.engines import engine_for
from backend.segmentation.selectors import engine_spec_for_project
from worker import rle as rle_codec
from worker.engines.base import Engine
from worker.engines.spec import EngineSpec
from worker.propagation import propagate_step

logger = logging.getLogger(__name__)

STEPS = {"up": (1,), "down": (-1,), "both": (1, -1)}
NAMES = {1: "up", -1: "down"}


def propagation_job_run(*, job_id: int) -> None:
    """Run the job (see the module docstring); it ends done or failed with why."""
    job = _claim(job_id)
    propagation_job_tell(job_id)
    if job is None:
        return
    stopped: dict[str, str] = {}
    try:
        spec = engine_spec_for_project(job.project)
        engine = engine_for(spec, decoding_only=True)
        for step in STEPS[job.direction]:
            stopped[NAMES[step]] = _walk(job, step, spec, engine)
    except Exception as exc:
        logger.exception("propagation job %s failed", job_id)
        reason = exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
        _finish(job_id, PropagationJob.Status.FAILED, stopped, error=reason)
        return
    _finish(job_id, PropagationJob.Status.DONE, stopped)


def _walk(job: PropagationJob, step: int, spec: EngineSpec, engine: Engine) -> str:
    """Carry the object plane by plane in one direction; where and why it stopped."""
    source = job.image
    if job.created_by is None or job.label is None:
        raise ServiceError("Its maker's account or its label was deleted meanwhile.")
    assert source.stack is not None
    instance = Instance.objects.filter(pk=job.instance_id).first()
    if instance is None:
        raise ServiceError("The instance to propagate was deleted meanwhile.")
    previous = rle_codec.decode(instance.rle).astype(bool)
    depth = int(source.stack.shape.get("Z", 1))
    z, done = source.z + step, 0
    why = "the last plane"
    while 0 <= z < depth:
        plane = Image.objects.filter(stack=source.stack, t=source.t, z=z).first()
        if plane is None or object_on_plane(image=plane, object_key=job.object_key):
            why = f"z={z}: " + ("the plane is gone" if plane is None else "the object is there")
            break
        embedding, _ = embedding_complete(image=plane, spec=spec)
        result = propagate_step(engine, embedding, previous)
        if result.mask is None:
            why = f"z={z}: {result.stop}"
            break
        propagated_create(image=plane, user=job.created_by, label=job.label,
                          rle=rle_codec.encode_crop(result.mask, 0, 0, *result.mask.shape),
                          object_key=job.object_key)  # fmt: skip
        done += 1
        PropagationJob.objects.filter(pk=job.pk).update(
            done_planes=F("done_planes") + 1, created_instances=F("created_instances") + 1
        )
        propagation_job_tell(job.pk)
        previous, z = result.mask, z + step
    planes = depth - 1 - source.z if step > 0 else source.z
    PropagationJob.objects.filter(pk=job.pk).update(done_planes=F("done_planes") + planes - done)
    return why


def _claim(job_id: int) -> PropagationJob | None:
    """Mark the job running, or None when it is finished, gone or refused."""
    with transaction.atomic():
        job = (
            PropagationJob.objects.select_for_update(of=("self",))
            .select_related("project", "image", "image__stack", "label", "created_by")
            .filter(pk=job_id)
            .first()
        )
        if job is None or job.status in (PropagationJob.Status.DONE, PropagationJob.Status.FAILED):
            return None
        job.started_at = timezone.now()
        user = job.created_by
        if user is None or not visible_projects(user).filter(pk=job.project_id).exists():
            refusal = "The user who asked for this can no longer see the project."
        else:
            refusal = "" if job.label is not None else "The object's label was deleted."
        if refusal:
            job.status, job.error, job.finished_at = (
                PropagationJob.Status.FAILED,
                refusal,
                job.started_at,
            )
            job.save()
            return None
        job.status, job.done_planes, job.created_instances = PropagationJob.Status.RUNNING, 0, 0
        job.save()
    return job


def _finish(job_id: int, status: str, stopped: dict[str, str], error: str = "") -> None:
    PropagationJob.objects.filter(pk=job_id).update(
        status=status, stopped=stopped, error=error[:4000], finished_at=timezone.now()
    )
    propagation_job_tell(job_id)
