"""Writes for segmentation: scheduling embeddings."""

from __future__ import annotations

from django.db import transaction

from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_project


def embedding_schedule(*, image: Image) -> Embedding:
    """Create (or reset) the image's embedding for its project's engine and
    enqueue the worker task once the transaction commits."""
    spec = engine_spec_for_project(image.project)
    embedding, created = Embedding.objects.get_or_create(image=image, engine_key=spec.key)
    if not created and embedding.status == Embedding.Status.READY:
        return embedding
    if not created:
        embedding.status = Embedding.Status.PENDING
        embedding.error = ""
        embedding.save(update_fields=["status", "error", "updated_at"])

    from backend.segmentation.tasks import compute_embedding

    embedding_id = embedding.pk
    transaction.on_commit(lambda: compute_embedding.delay(embedding_id))
    return embedding


def embeddings_schedule_for_project(*, project: Project) -> int:
    """Schedule the embedding of every image of the project for its current
    engine (after a model change); images already embedded are skipped.
    Returns how many were scheduled."""
    scheduled = 0
    for image in project.images.all():
        if embedding_schedule(image=image).status != Embedding.Status.READY:
            scheduled += 1
    return scheduled


def embeddings_requeue_unfinished() -> int:
    """Enqueue again every embedding left pending or running, for example by
    a worker that was stopped mid-task or a task lost with an embedded broker.

    Call it only where no other worker may be computing them (`serve` starts
    the single worker of the embedded setup); the task's claim makes a
    duplicate message harmless for ready embeddings.
    """
    from backend.segmentation.tasks import compute_embedding

    unfinished = list(
        Embedding.objects.filter(
            status__in=[Embedding.Status.PENDING, Embedding.Status.RUNNING]
        ).values_list("pk", flat=True)
    )
    Embedding.objects.filter(pk__in=unfinished).update(status=Embedding.Status.PENDING)
    for embedding_id in unfinished:
        compute_embedding.delay(embedding_id)
    return len(unfinished)
