"""Decoding prompts in the web process, from cached embeddings.

Runs on a small thread pool, never on the event loop. Embeddings are read
from the shared embedding store once and kept in a bounded LRU cache, so the
first click on an image costs one disk read and later clicks none.

Threads: DECODE_THREADS prompts decode at once (default 2: two people's
clicks are decoded side by side). A decode that runs alone gets every core;
one that starts while another runs gets one thread (the decoder's lanes,
worker/engines/sam/decoder/lanes.py), so a busy server gets more done and
an idle one answers a lone click sooner.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from backend.segmentation.engines import engine_for
from worker import embedding_store, rle
from worker.engines.base import EmbeddingSet, MaskResult, Prepares, Prompt
from worker.engines.mask_input import decode_refining, mask_to_previous
from worker.engines.spec import EngineSpec

MIB = 1024 * 1024


def embedding_nbytes(embedding: EmbeddingSet) -> int:
    return sum(int(array.nbytes) for array in embedding.arrays)


class EmbeddingCache:
    """A thread-safe LRU of loaded embeddings, bounded by item count and by
    bytes (a tiled image is many tiles of 2 MiB each; 0: no byte bound).

    The most recent embedding is kept even when it alone is over the byte
    bound. Concurrent misses on one key read the file once. A hit is checked
    against the stored folder's version (one stat): an embedding computed
    again (another model channel mapping, say) is read afresh in every web
    process, not only the one that asked for it.
    """

    def __init__(self, max_items: int, max_bytes: int = 0) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[tuple[str, int], EmbeddingSet] = OrderedDict()
        self._versions: dict[tuple[str, int], tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def get(self, engine_key: str, image_id: int) -> EmbeddingSet:
        key = (engine_key, image_id)
        current = embedding_store.version(settings.EMBEDDINGS_ROOT, engine_key, image_id)
        found = self._hit(key, current)
        if found is not None:
            return found
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            found = self._hit(key, current)
            if found is None:
                found = embedding_store.load(settings.EMBEDDINGS_ROOT, engine_key, image_id)
                self._put(key, found, current)
        with self._lock:
            self._loading.pop(key, None)
        return found

    def _hit(self, key: tuple[str, int], current: tuple[int, int]) -> EmbeddingSet | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or self._versions.get(key) != current:
                return None
            self._items.move_to_end(key)
            return found

    def _put(self, key: tuple[str, int], embedding: EmbeddingSet, current: tuple[int, int]) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= embedding_nbytes(old)
            self._items[key] = embedding
            self._versions[key] = current
            self.nbytes += embedding_nbytes(embedding)
            while len(self._items) > 1 and (
                len(self._items) > self.max_items
                or (self.max_bytes and self.nbytes > self.max_bytes)
            ):
                gone, dropped = self._items.popitem(last=False)
                self._versions.pop(gone, None)
                self.nbytes -= embedding_nbytes(dropped)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._versions.clear()
            self.nbytes = 0


_cache: EmbeddingCache | None = None
_executor: ThreadPoolExecutor | None = None
_init_lock = threading.Lock()


def embedding_cache() -> EmbeddingCache:
    global _cache
    with _init_lock:
        if _cache is None:
            _cache = EmbeddingCache(
                settings.EMBEDDING_CACHE_ITEMS, settings.EMBEDDING_CACHE_MB * MIB
            )
        return _cache


def decode_executor() -> ThreadPoolExecutor:
    global _executor
    with _init_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=max(1, settings.DECODE_THREADS), thread_name_prefix="decode"
            )
        return _executor


def decode_engine_threads() -> int:
    """Intra-op threads of a decode that runs alone: every core. Decodes that
    run beside another take one each (worker/engines/sam/decoder/lanes.py)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


@dataclass
class DecodeSession:
    """One connection's object in progress: prompts so far and the last mask."""

    image_id: int
    width: int
    height: int
    spec: EngineSpec
    points: list[tuple[float, float, int]] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    previous: MaskResult | None = None
    base: MaskResult | None = None  # the saved mask being refined, if any

    def reset(self) -> None:
        self.points.clear()
        self.box = None
        self.previous = None
        self.base = None


def session_decode(
    session: DecodeSession,
    *,
    points: list[tuple[float, float, int]],
    box: tuple[float, float, float, float] | None,
) -> tuple[float, dict[str, Any]]:
    """Add prompts to the session, decode, and return (score, COCO RLE)."""
    engine = engine_for(session.spec, decoding_only=True, threads=decode_engine_threads())
    embedding = embedding_cache().get(session.spec.embedding_key, session.image_id)
    new_points = session.points + points
    new_box = box if box is not None else session.box
    prompt = Prompt(points_xy_image=tuple(new_points), box_xyxy_image=new_box)
    result = decode_refining(engine, embedding, prompt, session.previous, session.base)
    # Only a successful decode changes the session, so an error leaves it as it was.
    session.points, session.box, session.previous = new_points, new_box, result
    encoded = rle.encode_crop(result.mask_crop, result.x0, result.y0, session.height, session.width)
    return float(result.score), encoded


def session_prepare(session: DecodeSession) -> None:
    """What the first click on the session's image needs, done ahead: its
    embedding loaded into the cache and the engine's per-image work (SAM's
    decoder image state), so that click is as quick as the next ones."""
    engine = engine_for(session.spec, decoding_only=True, threads=decode_engine_threads())
    if isinstance(engine, Prepares):
        engine.prepare(embedding_cache().get(session.spec.embedding_key, session.image_id))


def session_refine_from(
    session: DecodeSession, saved_rle: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    """Start the session over from a saved mask (COCO RLE, image frame): it
    becomes the previous result that later prompts refine (see
    worker/engines/mask_input.py). Returns (score, COCO RLE) of that mask."""
    embedding = embedding_cache().get(session.spec.embedding_key, session.image_id)
    previous = mask_to_previous(embedding, rle.decode(saved_rle))
    session.reset()
    session.previous = session.base = previous
    encoded = rle.encode_crop(
        previous.mask_crop, previous.x0, previous.y0, session.height, session.width
    )
    return previous.score, encoded
