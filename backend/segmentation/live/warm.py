"""Decoding engines loaded before anyone clicks: loading SAM's prompt
encoder, mask decoder and ONNX sessions takes seconds, and the first click
that waits for it is a whole class's first click when everyone opens the
same image at once.

A web process loads the engines of its busiest projects when it starts
(`warm_at_start`, from the ASGI lifespan, WARM_ENGINES of them), and a
connection to an image whose embedding is not ready yet loads its engine
while the annotator waits (`warm_engine`). Loading runs on a thread of its
own, never on the decode pool: a load never holds a click back."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Count

from backend.projects.models import Project
from backend.segmentation.engines import engine_for
from backend.segmentation.live.session import decode_engine_threads
from backend.segmentation.selectors import engine_spec_for_project
from worker.engines.spec import EngineSpec

logger = logging.getLogger(__name__)

_loader: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _loader
    with _lock:
        if _loader is None:
            _loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-warm")
        return _loader


def warm_engine(spec: EngineSpec) -> Future[None]:
    """Load `spec`'s decoding engine in the background (at once if loaded)."""
    return _executor().submit(_load, spec)


def _load(spec: EngineSpec) -> None:
    try:
        engine_for(spec, decoding_only=True, threads=decode_engine_threads())
    except Exception:
        logger.warning("loading the engine %s ahead of clicks failed", spec.key, exc_info=True)


def engines_in_use(limit: int) -> list[EngineSpec]:
    """The engines of the projects with the most images, at most `limit`."""
    specs: dict[str, EngineSpec] = {}
    busiest = Project.objects.annotate(n=Count("images")).filter(n__gt=0).order_by("-n", "id")
    for project in busiest[: limit * 4]:
        spec = engine_spec_for_project(project)
        specs.setdefault(spec.key, spec)
        if len(specs) >= limit:
            break
    return list(specs.values())


def warm_at_start() -> Future[None] | None:
    """Load the busiest projects' engines in the background (WARM_ENGINES of them)."""
    if settings.WARM_ENGINES <= 0:
        return None
    return _executor().submit(_warm_busiest, settings.WARM_ENGINES)


def _warm_busiest(limit: int) -> None:
    try:
        specs = engines_in_use(limit)
    except Exception:
        logger.warning("could not read which engines to load ahead", exc_info=True)
        return
    finally:
        close_old_connections()
    for spec in specs:
        _load(spec)
    logger.info("engines loaded ahead of clicks: %s", ", ".join(s.key for s in specs) or "none")
