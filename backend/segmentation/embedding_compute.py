"""Computing an image's embedding: what the worker task runs.

A plain function so it can be tested without a queue. It marks the embedding
running, computes it with the engine its key names, writes it atomically to
the embedding store and marks it ready; any failure marks it failed with the
reason, which the editor shows.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from backend.images.rendering import image_model_rgb
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_key
from worker import embedding_store
from worker.engines.registry import load_engine

logger = logging.getLogger(__name__)


def _claim(embedding_id: int) -> Embedding | None:
    """Mark the embedding running unless it is done or gone."""
    with transaction.atomic():
        embedding = (
            Embedding.objects.select_for_update()
            .select_related("image", "image__project")
            .filter(pk=embedding_id)
            .first()
        )
        if embedding is None or embedding.status == Embedding.Status.READY:
            return None
        embedding.status = Embedding.Status.RUNNING
        embedding.error = ""
        embedding.save(update_fields=["status", "error", "updated_at"])
        return embedding


def _finish(embedding: Embedding, *, status: str, path: str = "", error: str = "") -> None:
    Embedding.objects.filter(pk=embedding.pk).update(status=status, path=path, error=error[:2000])


def embedding_compute(*, embedding_id: int) -> None:
    embedding = _claim(embedding_id)
    if embedding is None:
        return
    spec = engine_spec_for_key(embedding.engine_key)
    if spec is None:
        _finish(
            embedding,
            status=Embedding.Status.FAILED,
            error=f"model {embedding.engine_key} is no longer installed",
        )
        return
    try:
        image_rgb = image_model_rgb(embedding.image)
        engine = load_engine(spec, for_decoding_only=False, threads=settings.TORCH_THREADS)
        embedding_set = engine.embed(image_rgb)
        path = embedding_store.save(
            settings.EMBEDDINGS_ROOT, embedding.engine_key, embedding.image_id, embedding_set
        )
    except Exception as exc:
        logger.exception("embedding %s of image %s failed", embedding.pk, embedding.image_id)
        _finish(embedding, status=Embedding.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    _finish(embedding, status=Embedding.Status.READY, path=str(path))
