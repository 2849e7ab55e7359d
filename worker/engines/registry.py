"""One loaded engine per spec key and process.

Loading a SAM checkpoint takes seconds and hundreds of MB, so each process
keeps the engines it has loaded. A decoding-only engine (prompt encoder and
mask decoder) is upgraded in place when the same process later needs to
embed; a full engine also serves decoding.

With a `tiling` config, a SAM engine comes wrapped in a TiledEngine (large
images embedded as native-resolution tiles; see worker/engines/tiling.py).
The classical engine already works at full resolution and is never wrapped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from worker.engines.base import Engine
from worker.engines.spec import CLASSICAL, EngineSpec
from worker.engines.tiling import TiledEngine, TilingConfig


@dataclass(frozen=True)
class EngineOptions:
    """How a SAM engine computes, from the deployment's settings.

    `embed_device` ("auto", "cpu", "cuda",
    "cuda:1"), `embed_precision` ("auto": bfloat16 where the device computes
    it natively, "float32", "bfloat16") and `embed_batch` (images per encoder
    pass, 0: the device's default) concern the image encoder.
    """

    embed_device: str = "auto"
    embed_precision: str = "float32"
    embed_batch: int = 0


@dataclass
class _Loaded:
    engine: Engine
    for_decoding_only: bool


_engines: dict[str, _Loaded] = {}
_key_locks: dict[str, threading.Lock] = {}
_lock = threading.Lock()


def load_engine(
    spec: EngineSpec,
    *,
    for_decoding_only: bool,
    threads: int = 0,
    tiling: TilingConfig | None = None,
    options: EngineOptions | None = None,
) -> Engine:
    """The process's engine for `spec`, loading it on first use.

    `tiling` wraps a SAM engine in a TiledEngine (a cheap object made per
    call around the loaded engine). Decoding needs it as soon as any stored
    embedding may be tiled; its values only matter to `embed`.

    `threads` > 0 sets the engine's intra-op threads (torch, process-wide,
    and the ONNX decoder's); 0 keeps torch's default and 2 for ONNX.
    Concurrent first calls for one key load it once; other keys' engines
    stay usable meanwhile. `options` apply when the engine is loaded (the
    first call that loads it decides).
    """
    engine = _usable(spec.key, for_decoding_only)
    if engine is None:
        engine = _load(
            spec,
            for_decoding_only=for_decoding_only,
            threads=threads,
            options=options or EngineOptions(),
        )
    if tiling is None or not spec.is_sam:
        return engine
    return TiledEngine(engine, tiling)


def _load(
    spec: EngineSpec, *, for_decoding_only: bool, threads: int, options: EngineOptions
) -> Engine:
    with _lock:
        key_lock = _key_locks.setdefault(spec.key, threading.Lock())
    with key_lock:
        found = _usable(spec.key, for_decoding_only)
        if found is not None:
            return found
        engine = _build(spec, for_decoding_only=for_decoding_only, threads=threads, options=options)
        with _lock:
            _engines[spec.key] = _Loaded(engine, for_decoding_only)
        return engine


def _usable(key: str, for_decoding_only: bool) -> Engine | None:
    """A loaded engine that can do what is asked (a full one can also decode)."""
    with _lock:
        loaded = _engines.get(key)
    if loaded is None or (loaded.for_decoding_only and not for_decoding_only):
        return None
    return loaded.engine


def _build(
    spec: EngineSpec, *, for_decoding_only: bool, threads: int, options: EngineOptions
) -> Engine:
    # Imported when first built: a classical-only server never loads torch.
    if spec.arch == CLASSICAL:
        from worker.engines.classical.engine import ClassicalEngine

        return ClassicalEngine(spec)
    from worker.engines.sam.engine import SamEngine

    return SamEngine(
        spec,
        load_image_encoder=not for_decoding_only,
        threads=threads,
        device=options.embed_device,
        precision=options.embed_precision,  # type: ignore[arg-type]
        max_batch=options.embed_batch,
    )


def loaded_keys() -> list[str]:
    with _lock:
        return sorted(_engines)


def forget(key: str | None = None) -> None:
    """Drop one loaded engine (or all): for tests and after a model is removed."""
    with _lock:
        if key is None:
            _engines.clear()
        else:
            _engines.pop(key, None)
