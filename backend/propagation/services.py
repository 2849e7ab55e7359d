"""Starting a propagation: the source instance becomes an object (it gets
an object key), the job is recorded and enqueued once the transaction
commits; what the worker then runs is run.py."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from backend.annotations.models import Instance
from backend.annotations.services.propagated import object_key_ensure
from backend.annotations.services.sets import write_require
from backend.common.enqueue import enqueue_or_fail
from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.projects.permissions import Action, project_require
from backend.propagation.models import PropagationJob
from backend.propagation.progress import propagation_job_tell
from backend.propagation.tasks import run_propagation_job
from backend.segmentation.selectors import engine_spec_for_project


@transaction.atomic
def propagation_start(
    *, image: Image, instance: Instance, user: AbstractBaseUser, direction: str
) -> PropagationJob:
    """Carry `instance` (on `image`, a plane of a stack) to the neighbouring
    planes in `direction`; those who may edit the curated set."""
    project_require(project=image.project, user=user, action=Action.ANNOTATE)
    if instance.image_id != image.pk:
        raise ServiceError(f"Instance {instance.pk} is not on image {image.pk}.")
    if instance.assignment_id is not None:
        raise ServiceError(
            "Propagation works on the curated set; this instance is in a person's set."
        )
    write_require(image=image, assignment=None, user=user)
    stack = image.stack
    if stack is None or int(stack.shape.get("Z", 1)) < 2:
        raise ServiceError(f"{image.name} is not a plane of a volume: nothing to propagate to.")
    if direction not in PropagationJob.Direction.values:
        raise ServiceError(
            f"direction must be one of: {', '.join(PropagationJob.Direction.values)}."
        )
    depth = int(stack.shape["Z"])
    up, down = depth - 1 - image.z, image.z
    total = {"up": up, "down": down, "both": up + down}[direction]
    if total == 0:
        raise ServiceError(f"{image.name} is the last plane {direction}: nothing to propagate to.")
    job = PropagationJob.objects.create(
        project=image.project,
        image=image,
        instance=instance,
        object_key=object_key_ensure(instance=instance),
        label=instance.label,
        direction=direction,
        engine_key=engine_spec_for_project(image.project).key,
        total_planes=total,
        created_by=user,
    )
    job_id = job.pk
    propagation_job_tell(job_id)
    transaction.on_commit(
        lambda: enqueue_or_fail(
            run_propagation_job, PropagationJob, job_id, failed=PropagationJob.Status.FAILED
        )
    )
    return job
