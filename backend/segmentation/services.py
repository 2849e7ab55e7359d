"""Writes for segmentation: scheduling embeddings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import transaction

from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_project
from worker.engines.spec import EngineSpec

# Embeddings of one engine per worker task: enough for the engine to batch,
# few enough that several workers share a large upload and a redelivered
# task redoes little.
EMBEDDINGS_PER_TASK = 8


def embedding_schedule(*, image: Image) -> Embedding:
    """Create (or reset) the image's embedding for its project's engine and
    enqueue the worker task once the transaction commits."""
    return embeddings_schedule(images=[image])[0]


def embeddings_schedule(*, images: Sequence[Image]) -> list[Embedding]:
    """`embedding_schedule` for several images (an upload, a model change):
    those of one engine are computed together, up to EMBEDDINGS_PER_TASK per
    task. Ready embeddings are returned as they are; one per image, in order."""
    specs: dict[int, EngineSpec] = {}
    embeddings = []
    for image in images:
        if image.project_id not in specs:
            specs[image.project_id] = engine_spec_for_project(image.project)
        embeddings.append(_embedding_reset(image=image, spec=specs[image.project_id]))
    _enqueue_after_commit(e for e in embeddings if e.status != Embedding.Status.READY)
    return embeddings


def _embedding_reset(*, image: Image, spec: EngineSpec) -> Embedding:
    """The image's embedding row for `spec`, pending unless it is ready."""
    embedding, created = Embedding.objects.get_or_create(image=image, engine_key=spec.key)
    if not created and embedding.status != Embedding.Status.READY:
        embedding.status = Embedding.Status.PENDING
        embedding.error = ""
        embedding.save(update_fields=["status", "error", "updated_at"])
    return embedding


def _enqueue_after_commit(embeddings: Iterable[Embedding]) -> None:
    for ids in _task_batches(embeddings):
        transaction.on_commit(lambda ids=ids: _enqueue(ids))


def _task_batches(embeddings: Iterable[Embedding]) -> list[list[int]]:
    """Embedding ids grouped by engine key, EMBEDDINGS_PER_TASK at most per group."""
    by_key: dict[str, list[int]] = {}
    for embedding in embeddings:
        by_key.setdefault(embedding.engine_key, []).append(embedding.pk)
    return [
        ids[start : start + EMBEDDINGS_PER_TASK]
        for ids in by_key.values()
        for start in range(0, len(ids), EMBEDDINGS_PER_TASK)
    ]


def _enqueue(embedding_ids: list[int]) -> None:
    from backend.segmentation.tasks import compute_embedding, compute_embeddings

    if len(embedding_ids) == 1:
        compute_embedding.delay(embedding_ids[0])
    else:
        compute_embeddings.delay(embedding_ids)


def embeddings_schedule_for_project(*, project: Project) -> int:
    """Schedule the embedding of every image of the project for its current
    engine (after a model change); images already embedded are skipped.
    Returns how many were scheduled."""
    images = list(project.images.select_related("project"))
    embeddings = embeddings_schedule(images=images)
    return sum(e.status != Embedding.Status.READY for e in embeddings)


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
            status__in=[
                Embedding.Status.PENDING,
                Embedding.Status.RUNNING,
                Embedding.Status.COARSE,
            ]
        ).values_list("pk", flat=True)
    )
    Embedding.objects.filter(pk__in=unfinished).update(status=Embedding.Status.PENDING)
    for embedding_id in unfinished:
        compute_embedding.delay(embedding_id)
    return len(unfinished)
