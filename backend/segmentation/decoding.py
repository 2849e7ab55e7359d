"""Decoding prompts in the web process, from cached embeddings.

Runs on a small thread pool, never on the event loop. Embeddings are read
from the shared embedding store once and kept in a bounded LRU cache, so the
first click on an image costs one disk read and later clicks none.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from worker import embedding_store, rle
from worker.engines.base import EmbeddingSet, MaskResult, Prompt
from worker.engines.registry import load_engine
from worker.engines.spec import EngineSpec


class EmbeddingCache:
    """A thread-safe LRU of loaded embeddings, bounded by item count."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, int], EmbeddingSet] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, engine_key: str, image_id: int) -> EmbeddingSet:
        key = (engine_key, image_id)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        loaded = embedding_store.load(settings.EMBEDDINGS_ROOT, engine_key, image_id)
        with self._lock:
            self._items[key] = loaded
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache: EmbeddingCache | None = None
_executor: ThreadPoolExecutor | None = None
_init_lock = threading.Lock()


def embedding_cache() -> EmbeddingCache:
    global _cache
    with _init_lock:
        if _cache is None:
            _cache = EmbeddingCache(settings.EMBEDDING_CACHE_ITEMS)
        return _cache


def decode_executor() -> ThreadPoolExecutor:
    global _executor
    with _init_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=max(1, settings.DECODE_THREADS), thread_name_prefix="decode"
            )
        return _executor


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

    def reset(self) -> None:
        self.points.clear()
        self.box = None
        self.previous = None


def session_decode(
    session: DecodeSession,
    *,
    points: list[tuple[float, float, int]],
    box: tuple[float, float, float, float] | None,
) -> tuple[float, dict[str, Any]]:
    """Add prompts to the session, decode, and return (score, COCO RLE)."""
    engine = load_engine(session.spec, for_decoding_only=True)
    embedding = embedding_cache().get(session.spec.key, session.image_id)
    new_points = session.points + points
    new_box = box if box is not None else session.box
    prompt = Prompt(points_xy_image=tuple(new_points), box_xyxy_image=new_box)
    result = engine.decode(embedding, prompt, session.previous)
    # Only a successful decode changes the session, so an error leaves it as it was.
    session.points, session.box, session.previous = new_points, new_box, result
    encoded = rle.encode_crop(
        result.mask_crop, result.x0, result.y0, session.height, session.width
    )
    return float(result.score), encoded
