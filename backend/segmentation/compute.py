"""Computing images' embeddings: what the worker tasks run.

Plain functions so they can be tested without a queue. Each embedding is
claimed (marked running, under a row lock) just before its batch is
computed with the engine its key names, written atomically to the embedding
store and marked ready; any failure marks that embedding failed with the
reason, which the editor shows. A ready embedding is never computed again,
so a redelivered task (acks_late) only redoes what was not finished, and
one that another live worker is computing is left to it (lease.py).

`embeddings_compute` takes several ids: those of one engine key go through
the engine's `embed_batch` a batch at a time (BATCH_SIZE images, fewer when
they are large); SamEngine runs a batch through the image encoder together.
When a batch fails, its images are embedded again one by one, so that one
bad image fails alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from backend.common.errors import ServiceError
from backend.images.models import Image
from backend.images.rendering import image_model_rgb
from backend.segmentation.engines import engine_for
from backend.segmentation.lease import heartbeat, is_held, wait_while_held
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_key
from worker import embedding_store
from worker.engines.base import EmbeddingSet, Engine
from worker.engines.spec import EngineSpec
from worker.engines.tiling import TiledEngine

logger = logging.getLogger(__name__)

# Images decoded, held in memory and embedded together: up to BATCH_SIZE, and
# fewer when they are large (an image is never split: one may exceed the budget).
BATCH_SIZE = 8
BATCH_PIXELS = 64 * 2**20


def _claim(embedding_id: int, held: list[int]) -> Embedding | None:
    """Mark the embedding running unless it is done or gone, or another live
    worker holds it (then its id goes into `held`)."""
    with transaction.atomic():
        embedding = (
            Embedding.objects.select_for_update()
            .select_related("image", "image__project")
            .filter(pk=embedding_id)
            .first()
        )
        if embedding is None or embedding.status == Embedding.Status.READY:
            return None
        if is_held(embedding):
            held.append(embedding_id)
            return None
        embedding.status = Embedding.Status.RUNNING
        embedding.error = ""
        embedding.save(update_fields=["status", "error", "updated_at"])
        return embedding


def _finish(embedding: Embedding, *, status: str, path: str = "", error: str = "") -> None:
    Embedding.objects.filter(pk=embedding.pk).update(
        status=status, path=path, error=error[:2000], updated_at=timezone.now()
    )


def _fail(embedding: Embedding, exc: Exception) -> None:
    logger.error("embedding %s of image %s failed", embedding.pk, embedding.image_id, exc_info=exc)
    _finish(embedding, status=Embedding.Status.FAILED, error=f"{type(exc).__name__}: {exc}")


def embedding_compute(*, embedding_id: int) -> list[int]:
    """Compute one embedding (see `embeddings_compute`)."""
    return embeddings_compute(embedding_ids=[embedding_id])


def embeddings_compute(*, embedding_ids: Sequence[int]) -> list[int]:
    """Compute several embeddings, batching those of one engine key; ids that
    are gone or already ready are skipped. Returns the ids left because
    another live worker holds them."""
    rows = Embedding.objects.filter(pk__in=embedding_ids).values_list(
        "pk", "engine_key", "image__width", "image__height"
    )
    found = {pk: (key, width * height) for pk, key, width, height in rows}
    groups: dict[str, list[tuple[int, int]]] = {}
    for embedding_id in dict.fromkeys(embedding_ids):  # in order, once each
        if embedding_id in found:
            key, pixels = found[embedding_id]
            groups.setdefault(key, []).append((embedding_id, pixels))
    held: list[int] = []
    for engine_key, sized_ids in groups.items():
        _compute_group(engine_key, sized_ids, held)
    return held


def _compute_group(engine_key: str, sized_ids: list[tuple[int, int]], held: list[int]) -> None:
    spec = engine_spec_for_key(engine_key)
    engine: Engine | None = None
    for chunk in _batches(sized_ids):
        claimed = [e for e in (_claim(i, held) for i in chunk) if e is not None]
        if not claimed:
            continue
        with heartbeat([e.pk for e in claimed]):
            engine = _compute_chunk(spec, engine_key, engine, claimed)


def _compute_chunk(
    spec: EngineSpec | None, engine_key: str, engine: Engine | None, claimed: list[Embedding]
) -> Engine | None:
    """Compute the claimed embeddings; returns the engine, loaded once per group."""
    if spec is None:
        for embedding in claimed:
            _finish(
                embedding,
                status=Embedding.Status.FAILED,
                error=f"model {engine_key} is no longer installed",
            )
        return engine
    try:
        engine = engine or _load(spec)
    except Exception as exc:
        for embedding in claimed:
            _fail(embedding, exc)
        return None
    _compute_batch(engine, claimed)
    return engine


def _load(spec: EngineSpec) -> Engine:
    return engine_for(spec, decoding_only=False)


def _compute_batch(engine: Engine, embeddings: list[Embedding]) -> None:
    images: list[np.ndarray] = []
    loaded: list[Embedding] = []
    for embedding in embeddings:
        try:
            images.append(image_model_rgb(embedding.image))
            loaded.append(embedding)
        except Exception as exc:
            _fail(embedding, exc)
    if isinstance(engine, TiledEngine):
        # A large image is made clickable on its overview first (seconds),
        # then refined tile by tile (minutes on a CPU).
        small = []
        for embedding, image in zip(loaded, images, strict=True):
            if engine.will_tile(*image.shape[:2]):
                _compute_coarse_first(engine, embedding, image)
            else:
                small.append((embedding, image))
        loaded, images = [e for e, _ in small], [i for _, i in small]
    if not loaded:
        return
    try:
        results = embed_many(engine, images)
    except Exception as exc:
        if len(loaded) == 1:
            _fail(loaded[0], exc)
            return
        logger.warning("a batch of %s embeddings failed (%s); one by one", len(loaded), exc)
        for embedding, image in zip(loaded, images, strict=True):
            _compute_one(engine, embedding, image)
        return
    for embedding, result in zip(loaded, results, strict=True):
        _store(embedding, result)


def _compute_one(engine: Engine, embedding: Embedding, image: np.ndarray) -> None:
    try:
        result = engine.embed(image)
    except Exception as exc:
        _fail(embedding, exc)
        return
    _store(embedding, result)


def _compute_coarse_first(engine: TiledEngine, embedding: Embedding, image: np.ndarray) -> None:
    """The shrunk overview stored and marked COARSE (clickable), then every
    tile, the overview reused, stored and marked READY."""
    try:
        overview = engine.inner.embed(image)
    except Exception as exc:
        _fail(embedding, exc)
        return
    if not _store(embedding, overview, status=Embedding.Status.COARSE):
        return
    try:
        result = engine.embed(image, overview=overview)
    except Exception as exc:
        _fail(embedding, exc)
        return
    _store(embedding, result)


def _store(
    embedding: Embedding, result: EmbeddingSet, status: str = Embedding.Status.READY
) -> bool:
    try:
        path = embedding_store.save(
            settings.EMBEDDINGS_ROOT, embedding.engine_key, embedding.image_id, result
        )
    except Exception as exc:
        _fail(embedding, exc)
        return False
    _finish(embedding, status=status, path=str(path))
    return True


def embed_many(engine: Engine, images_rgb: list[np.ndarray]) -> list[EmbeddingSet]:
    """The engine's `embed_batch` when it has one, else `embed` on each image."""
    embed_batch = getattr(engine, "embed_batch", None)
    if embed_batch is None:
        return [engine.embed(image) for image in images_rgb]
    results: list[EmbeddingSet] = embed_batch(images_rgb)
    if len(results) != len(images_rgb):
        raise ValueError(f"{engine.key} returned {len(results)} embeddings for {len(images_rgb)}")
    return results


def _batches(sized_ids: list[tuple[int, int]]) -> Iterator[list[int]]:
    """(id, pixels) pairs cut into runs of at most BATCH_SIZE ids and
    BATCH_PIXELS pixels (one larger image makes a batch alone)."""
    batch: list[int] = []
    pixels = 0
    for embedding_id, size in sized_ids:
        if batch and (len(batch) == BATCH_SIZE or pixels + size > BATCH_PIXELS):
            yield batch
            batch, pixels = [], 0
        batch.append(embedding_id)
        pixels += size
    if batch:
        yield batch


def embedding_complete(*, image: Image, spec: EngineSpec) -> tuple[EmbeddingSet, bool]:
    """The image's complete embedding for `spec` (not a coarse one) and
    whether it was computed here, as the embedding task would, because the
    store had none ready. One that another live worker is computing is
    waited for, not computed again. ServiceError when it cannot be computed."""
    root = settings.EMBEDDINGS_ROOT
    row_id = Embedding.objects.get_or_create(image=image, engine_key=spec.embedding_key)[0].pk
    computed = False
    for _ in range(3):  # a row taken by another worker between our look and our claim
        row = wait_while_held(row_id)
        if row is None:
            raise ServiceError(f"Image {image.pk} was deleted meanwhile.")
        if row.status == Embedding.Status.READY:
            try:
                return embedding_store.load(root, spec.embedding_key, image.pk), computed
            except FileNotFoundError:  # marked ready but its files are gone
                Embedding.objects.filter(pk=row.pk).update(status=Embedding.Status.PENDING)
        elif computed:
            break
        computed = computed or not embedding_compute(embedding_id=row_id)
    failed = Embedding.objects.filter(pk=row_id).values_list("error", flat=True).first()
    raise ServiceError(f"Could not compute the embedding of image {image.name}: {failed or ''}")


# How long a task that gives up keeps trying to record so, before it leaves
# the rows to be queued again when their image is opened.
GIVE_UP_WRITE_SECONDS = 30.0


def embeddings_give_up(*, embedding_ids: Sequence[int], reason: str) -> None:
    """Mark the unfinished of `embedding_ids` failed with `reason`. The
    database may be what failed: a fresh connection, tried for up to
    GIVE_UP_WRITE_SECONDS; after that the rows stay as they are, to be
    queued again (services.embeddings_requeue_stale)."""
    logger.error("embeddings %s: %s", list(embedding_ids), reason)
    deadline = time.monotonic() + GIVE_UP_WRITE_SECONDS
    while True:
        connection.close()
        try:
            Embedding.objects.filter(pk__in=embedding_ids).exclude(
                status=Embedding.Status.READY
            ).update(status=Embedding.Status.FAILED, error=reason[:2000], updated_at=timezone.now())
            return
        except DatabaseError:
            if time.monotonic() > deadline:
                logger.exception("could not mark embeddings %s failed", list(embedding_ids))
                return
            time.sleep(1.0)
