"""Writes for segmentation: scheduling embeddings, and queueing again the
ones whose task was lost."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_project
from backend.segmentation.tasks import compute_embedding, compute_embeddings
from worker import embedding_store
from worker.engines.spec import EngineSpec

logger = logging.getLogger(__name__)

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
    embedding, created = Embedding.objects.get_or_create(image=image, engine_key=spec.embedding_key)
    if not created and embedding.status != Embedding.Status.READY:
        embedding.status = Embedding.Status.PENDING
        embedding.error = ""
        embedding.save(update_fields=["status", "error", "updated_at"])
    return embedding


def _enqueue_after_commit(embeddings: Iterable[Embedding]) -> None:
    for ids in _task_batches((e.pk, e.engine_key) for e in embeddings):
        transaction.on_commit(lambda ids=ids: _enqueue(ids))


def _task_batches(rows: Iterable[tuple[int, str]]) -> list[list[int]]:
    """Embedding ids of (id, engine key) rows, grouped by engine key,
    EMBEDDINGS_PER_TASK at most per group."""
    by_key: dict[str, list[int]] = {}
    for pk, engine_key in rows:
        by_key.setdefault(engine_key, []).append(pk)
    return [
        ids[start : start + EMBEDDINGS_PER_TASK]
        for ids in by_key.values()
        for start in range(0, len(ids), EMBEDDINGS_PER_TASK)
    ]


def _enqueue(embedding_ids: list[int]) -> None:
    """Hand a task to the broker and note when. A broker that refuses it is
    logged, not raised: the rows stay unfinished and are queued again when
    their image or project is opened (`embeddings_requeue_stale`)."""
    try:
        if len(embedding_ids) == 1:
            compute_embedding.delay(embedding_ids[0])
        else:
            compute_embeddings.delay(embedding_ids)
    except BrokerError as exc:
        logger.warning("could not queue embeddings %s: %s", embedding_ids, exc)
        return
    Embedding.objects.filter(pk__in=embedding_ids).update(queued_at=timezone.now())


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
    unfinished = list(
        Embedding.objects.filter(
            status__in=[
                Embedding.Status.PENDING,
                Embedding.Status.RUNNING,
                Embedding.Status.COARSE,
            ]
        ).values_list("pk", flat=True)
    )
    Embedding.objects.filter(pk__in=unfinished).update(
        status=Embedding.Status.PENDING, queued_at=timezone.now()
    )
    for embedding_id in unfinished:
        compute_embedding.delay(embedding_id)
    return len(unfinished)


# At most this many embeddings are queued again per page opened.
REQUEUE_BATCH = 64


def embeddings_requeue_stale(*, image: Image | None = None, project: Project | None = None) -> int:
    """Queue again the embeddings of `image`, or of every image of `project`,
    that look lost: pending for EMBEDDING_STALE_SECONDS since they were
    queued (a task lost to a broker outage or a worker error), or running or
    coarse with their lease run out (their worker died). Called when an
    image's editor or its project's page opens; a duplicate task is harmless
    (a ready or held embedding is left alone). Returns how many were queued."""
    if image is not None:
        embeddings = Embedding.objects.filter(image=image)
    else:
        embeddings = Embedding.objects.filter(image__project=project)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EMBEDDING_STALE_SECONDS)
    lease = now - timedelta(seconds=settings.EMBEDDING_LEASE_SECONDS)
    lost = embeddings.filter(
        Q(status=Embedding.Status.PENDING, updated_at__lt=stale)
        & (Q(queued_at__isnull=True) | Q(queued_at__lt=stale))
        | Q(status__in=[Embedding.Status.RUNNING, Embedding.Status.COARSE], updated_at__lt=lease)
        & (Q(queued_at__isnull=True) | Q(queued_at__lt=lease))
    )
    rows = list(lost.order_by("updated_at").values_list("pk", "engine_key")[:REQUEUE_BATCH])
    if rows:
        logger.info("queueing %s lost embedding(s) again: %s", len(rows), [pk for pk, _ in rows])
    for ids in _task_batches(rows):
        _enqueue(ids)
    return len(rows)


def embeddings_discard_for_project(*, project: Project) -> None:
    """Delete every embedding of the project's images now, and their files once
    the transaction commits (before the new ones are enqueued: on_commit runs
    callbacks in order)."""
    embeddings = Embedding.objects.filter(image__project=project)
    stored = list(embeddings.values_list("engine_key", "image_id"))
    embeddings.delete()
    transaction.on_commit(lambda: embedding_files_delete(stored))


def embedding_files_delete(stored: Sequence[tuple[str, int]]) -> None:
    for engine_key, image_id in stored:
        try:
            embedding_store.delete(settings.EMBEDDINGS_ROOT, engine_key, image_id)
        except (OSError, ValueError):
            logger.exception("could not delete embedding %s of image %s", engine_key, image_id)
    # Every web process's decode cache sees the files go (EmbeddingCache checks
    # the stored version on each hit), so none answers from the old mapping.
