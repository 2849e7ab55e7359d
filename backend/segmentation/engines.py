"""The one place where backend code loads an engine: the settings' tiling,
encoder device and precision applied the same way for decoding, embedding,
proposals and evaluation."""

from __future__ import annotations

from django.conf import settings

from worker.engines.base import Engine
from worker.engines.registry import EngineOptions, load_engine
from worker.engines.spec import EngineSpec
from worker.engines.tiling import TilingConfig


def engine_options() -> EngineOptions:
    return EngineOptions(
        embed_device=settings.EMBED_DEVICE,
        embed_precision=settings.EMBED_PRECISION,
        embed_batch=settings.EMBED_BATCH,
    )


def engine_for(spec: EngineSpec, *, decoding_only: bool, threads: int | None = None) -> Engine:
    """The process's engine for `spec`, tiled as the settings say.

    `threads` is the intra-op thread count (default TORCH_THREADS)."""
    return load_engine(
        spec,
        for_decoding_only=decoding_only,
        threads=settings.TORCH_THREADS if threads is None else threads,
        tiling=TilingConfig.from_settings(settings),
        options=engine_options(),
    )
