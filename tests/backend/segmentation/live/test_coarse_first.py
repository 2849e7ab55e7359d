"""A large image is clickable on its shrunk overview while its native tiles
are still being computed (status "coarse"), then at full resolution."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection

from backend.images.models import Image
from backend.images.rendering import image_model_rgb
from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation.checkpoints import segmentation_model_install
from backend.segmentation.compute import embedding_compute
from backend.segmentation.engines import engine_for
from backend.segmentation.live.session import embedding_cache
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import engine_spec_for_key
from tests.tiny_sam import save_tiny_checkpoint, synthetic_cells
from tests.worker.engines.test_tiling import CONFIG, StampEngine, tiff_upload
from tests.ws_fixtures import connect, receive_until, session_headers
from worker import embedding_store, rle
from worker.engines import registry
from worker.engines.base import EmbeddingSet, Prompt
from worker.engines.tiling import TiledEngine

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = (1200, 1700)  # (H, W): 2 x 2 native tiles of 1024 and the overview


class CountingStampEngine(StampEngine):
    """StampEngine that counts the crops it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[tuple[int, int]] = []

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        self.embedded.append(image_rgb.shape[:2])
        return super().embed(image_rgb)


def test_a_given_overview_is_the_overview_tile_and_is_not_embedded_again() -> None:
    inner = CountingStampEngine()
    engine = TiledEngine(inner, CONFIG)
    image = np.random.default_rng(1).integers(0, 255, (2500, 3000, 3), dtype=np.uint8)
    assert engine.will_tile(2500, 3000) and not engine.will_tile(2048, 1500)
    overview = inner.embed(image)
    inner.embedded.clear()
    tiled = engine.embed(image, overview=overview)
    assert tiled.arrays[0] is overview.arrays[0]
    assert (2500, 3000) not in inner.embedded and len(inner.embedded) == len(tiled.tiles) - 1
    assert tiled.tiles == engine.embed(image).tiles


@pytest.fixture
def large_image(project: Project, owner: User, settings: Any, tmp_path: Path) -> Iterator[Image]:
    settings.TILE_THRESHOLD, settings.TILE_SIZE, settings.TILE_OVERLAP = 1024, 1024, 256
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    segmentation_model_install(
        name="tiny", arch="custom", checkpoint_path=checkpoint, prepare_decoder=False
    )
    gray = synthetic_cells(SIZE)[..., 0]
    [image] = image_upload(project=project, user=owner, files=[tiff_upload(gray, "wide.tif")])
    registry.forget()
    embedding_cache().clear()
    yield image
    registry.forget()
    embedding_cache().clear()


def test_the_worker_stores_the_overview_as_coarse_before_the_tiles(large_image: Image) -> None:
    row = Embedding.objects.get(image=large_image)
    seen: list[tuple[str, int]] = []  # (status, tiles in the store)
    done = threading.Event()

    def watch() -> None:
        try:
            while not done.is_set():
                status = Embedding.objects.get(pk=row.pk).status
                try:
                    stored = embedding_store.load(
                        _root(), row.engine_key, large_image.pk, mmap=True
                    )
                    tiles = len(stored.tiles)
                except FileNotFoundError:
                    tiles = 0
                if not seen or seen[-1] != (status, tiles):
                    seen.append((status, tiles))
                time.sleep(0.005)
        finally:
            connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        embedding_compute(embedding_id=row.pk)
    finally:
        done.set()
        watcher.join()
    row.refresh_from_db()
    assert row.status == Embedding.Status.READY, row.error
    final = embedding_store.load(_root(), row.engine_key, large_image.pk)
    assert len(final.tiles) == 1 + 2 * 2
    assert ("coarse", 1) in seen, seen  # the overview alone, clickable...
    before = seen[: seen.index(("coarse", 1))]
    assert all(status in ("pending", "running") for status, _ in before), seen  # ...first


def test_clicks_answer_on_the_coarse_embedding_and_then_from_the_tiles(
    large_image: Image, owner: User
) -> None:
    row = Embedding.objects.get(image=large_image)
    spec = engine_spec_for_key(row.engine_key)
    assert spec is not None
    engine = engine_for(spec, decoding_only=False)
    assert isinstance(engine, TiledEngine)
    pixels = image_model_rgb(large_image)
    overview = engine.inner.embed(pixels)
    embedding_store.save(_root(), row.engine_key, large_image.pk, overview)
    Embedding.objects.filter(pk=row.pk).update(status=Embedding.Status.COARSE)
    headers = session_headers(owner)
    prompt = {"type": "prompt", "points": [[1500, 300, 1]], "box": None}

    async def run() -> list[dict[str, Any]]:
        communicator = await connect(large_image.pk, headers)
        assert (await receive_until(communicator, "status"))["embedding_status"] == "coarse"
        await communicator.send_json_to({**prompt, "request_id": 1})
        replies = [await receive_until(communicator, "mask")]
        tiled = await asyncio.to_thread(engine.embed, pixels, overview)
        await asyncio.to_thread(
            embedding_store.save, _root(), row.engine_key, large_image.pk, tiled
        )
        await asyncio.to_thread(
            Embedding.objects.filter(pk=row.pk).update, status=Embedding.Status.READY
        )
        replies.append(await receive_until(communicator, "status"))
        await communicator.send_json_to({"type": "reset"})
        await communicator.send_json_to({**prompt, "request_id": 2})
        replies.append(await receive_until(communicator, "mask"))
        await communicator.disconnect()
        return replies

    coarse, status, full = asyncio.run(run())
    assert status["embedding_status"] == "ready"
    stored = embedding_store.load(_root(), row.engine_key, large_image.pk)
    click = Prompt(points_xy_image=((1500.0, 300.0, 1),))
    for reply, request_id, embedding in ((coarse, 1, overview), (full, 2, stored)):
        want = engine.decode(embedding, click, None)
        assert reply["request_id"] == request_id
        assert reply["rle"] == rle.encode_crop(want.mask_crop, want.x0, want.y0, *SIZE)
    # (Random weights' masks cover the image: cut at every tile side, they
    # end up decoded in the overview, so the two masks may well be equal.)


def _root() -> Path:
    from django.conf import settings

    return Path(settings.EMBEDDINGS_ROOT)
