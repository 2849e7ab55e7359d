"""Batched embedding: the encoder's fast paths against segment_anything's
own, and the worker's batch of embeddings, one image's failure alone.

On a tiny random SAM (tests/tiny_sam.py), whose embeddings are (256, 64, 64)
like vit_b's, so every frame and padding rule is the real one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from segment_anything import SamPredictor
from segment_anything.modeling.image_encoder import Attention

from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Project
from backend.segmentation import compute
from backend.segmentation import embeddings as services
from backend.segmentation.checkpoints import segmentation_model_install
from backend.segmentation.engines import engine_for
from backend.segmentation.models import Embedding
from tests.conftest import shared_data
from tests.tiny_sam import (
    build_tiny_sam,
    result_mask,
    save_tiny_checkpoint,
    synthetic_cells,
    tiny_spec,
)
from tests.worker.engines.sam.test_engine import random_prompts
from worker import embedding_store
from worker.engines import registry
from worker.engines.base import EmbeddingSet, Engine
from worker.engines.sam import encoder as sam_encoder
from worker.engines.sam.encoder import BatchEncoder, SdpaAttention, use_sdpa_attention
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import EngineSpec
from worker.engines.tiling import TiledEngine
from worker.metrics import iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Not square, a grayscale one, one that is shrunk and one that is enlarged.
SIZES = [(300, 420), (1500, 1100), (1024, 1024), (200, 150)]
PROMPT_IMAGE_SIZE = (300, 420)  # the frame tests.worker.engines.sam.test_engine.random_prompts uses


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> EngineSpec:
    return tiny_spec(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def engine(spec: EngineSpec) -> SamEngine:
    return SamEngine(spec, backend="torch", precision="float32", max_batch=3)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    made = [synthetic_cells(size, seed=i) for i, size in enumerate(SIZES)]
    made[1] = made[1][..., 0]  # (H, W) grayscale
    return made


def max_relative_error(got: np.ndarray, want: np.ndarray) -> float:
    want = want.astype(np.float32)
    return float(np.abs(got.astype(np.float32) - want).max() / np.abs(want).max())


# -- the encoder -------------------------------------------------------------


def test_a_batch_equals_each_image_embedded_alone(
    engine: SamEngine, images: list[np.ndarray]
) -> None:
    batch = engine.embed_batch(images)  # two passes: 3 images, then 1
    assert len(batch) == len(images)
    for image, got in zip(images, batch, strict=True):
        want = engine.embed(image)
        assert got.arrays[0].shape == (256, 64, 64) and got.arrays[0].dtype == np.float16
        assert max_relative_error(got.arrays[0], want.arrays[0]) < 2e-3
        assert (got.image_height, got.image_width) == image.shape[:2]
        assert got.meta == want.meta and got.tiles == want.tiles


def test_the_embedding_is_sam_predictors_after_a_shrink(
    engine: SamEngine, images: list[np.ndarray]
) -> None:
    predictor = SamPredictor(build_tiny_sam())  # the checkpoint's seed
    for image in images[:2]:
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        predictor.set_image(rgb)
        got = engine.embed(image)
        assert got.meta["input_size"] == list(predictor.input_size)
        reference = predictor.features[0].numpy()
        # PIL's resize and torch's antialiased one differ by at most one grey level.
        assert max_relative_error(got.arrays[0], reference) < 1e-2


def test_preprocessing_matches_sam_predictors_resize() -> None:
    sam = build_tiny_sam()
    encoder = BatchEncoder(sam.image_encoder, sam.pixel_mean, sam.pixel_std, device="cpu")
    predictor = SamPredictor(sam)
    rng = np.random.default_rng(0)
    for size in [(2000, 1500), (37, 2000), (300, 420)]:
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        x, input_size = encoder.preprocess(image)
        resized = predictor.transform.apply_image(image)
        want = sam.preprocess(torch.as_tensor(resized).permute(2, 0, 1)[None].float())[0]
        assert input_size == resized.shape[:2] and x.shape == (3, 1024, 1024)
        step = float(1 / sam.pixel_std.min())  # one grey level, normalised
        assert float((x - want).abs().max()) <= step * 1.01


@pytest.mark.parametrize(("grid", "batch"), [((14, 14), 3), ((32, 32), 2), ((9, 20), 1)])
def test_sdpa_attention_equals_segment_anythings(
    grid: tuple[int, int], batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    original = Attention(64, num_heads=4, use_rel_pos=True, input_size=grid).eval()
    with torch.no_grad():
        original.rel_pos_h.normal_(0, 0.5)
        original.rel_pos_w.normal_(0, 0.5)
    x = torch.randn(batch, *grid, 64)
    # A small bias budget, so that the batch is split into chunks.
    monkeypatch.setattr(sam_encoder, "_MAX_BIAS_ELEMENTS", 4 * grid[0] * grid[1] * 4096)
    with torch.inference_mode():
        want = original(x)
        got = SdpaAttention(original)(x)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_the_whole_encoder_is_unchanged_by_sdpa() -> None:
    encoder = build_tiny_sam().image_encoder
    fast = copy.deepcopy(encoder)
    assert use_sdpa_attention(fast) == len(encoder.blocks)
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        want, got = encoder(x), fast(x)
    assert float((got - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_bfloat16_masks_agree_with_float32(spec: EngineSpec, engine: SamEngine) -> None:
    reduced = SamEngine(spec, backend="torch", precision="bfloat16")
    assert reduced.encoder is not None and reduced.encoder.dtype == torch.bfloat16
    image = synthetic_cells(PROMPT_IMAGE_SIZE)
    want_set, got_set = engine.embed(image), reduced.embed(image)
    ious = []
    for prompt in random_prompts(24, seed=3):
        want = result_mask(engine.decode(want_set, prompt, None), PROMPT_IMAGE_SIZE)
        got = result_mask(engine.decode(got_set, prompt, None), PROMPT_IMAGE_SIZE)
        ious.append(iou(got, want))
    assert np.mean(ious) >= 0.98, ious


def test_auto_precision_is_bfloat16_only_where_it_is_native(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(sam_encoder, "cpu_computes_bf16", lambda: False)
    assert sam_encoder.pick_dtype(cpu, "auto") == torch.float32
    monkeypatch.setattr(sam_encoder, "cpu_computes_bf16", lambda: True)
    assert sam_encoder.pick_dtype(cpu, "auto") == torch.bfloat16
    assert sam_encoder.pick_dtype(cpu, "float32") == torch.float32
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert sam_encoder.pick_device("auto").type == expected


# -- the worker's batch ------------------------------------------------------


@pytest.fixture
def tiny_model(tmp_path: Path, db: None) -> Iterator[None]:
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    segmentation_model_install(
        name="tiny", arch="custom", checkpoint_path=checkpoint, prepare_decoder=False
    )
    registry.forget()
    yield
    registry.forget()


def upload(project: Project, owner: User, count: int) -> list[Image]:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    files = [SimpleUploadedFile(f"n{i}.tif", data) for i in range(count)]
    return image_upload(project=project, user=owner, files=files)


def rows(images: list[Image]) -> list[Embedding]:
    return [Embedding.objects.get(image=image) for image in images]


@pytest.mark.django_db
def test_the_batch_task_marks_each_embedding_ready(
    project: Project, owner: User, tiny_model: None, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings = rows(upload(project, owner, 3))
    batches: list[int] = []
    embed_many = compute.embed_many

    def spy(engine: Engine, images: list[np.ndarray]) -> list[EmbeddingSet]:
        batches.append(len(images))
        return embed_many(engine, images)

    monkeypatch.setattr(compute, "embed_many", spy)
    monkeypatch.setattr(compute, "BATCH_SIZE", 2)
    compute.embeddings_compute(embedding_ids=[e.pk for e in embeddings])
    assert batches == [2, 1]
    for embedding in embeddings:
        embedding.refresh_from_db()
        assert embedding.status == Embedding.Status.READY, embedding.error
        stored = embedding_store.load(
            settings.EMBEDDINGS_ROOT, embedding.engine_key, embedding.image_id
        )
        assert stored.arrays[0].shape == (256, 64, 64)


@pytest.mark.django_db
def test_one_unreadable_image_fails_alone(
    project: Project, owner: User, tiny_model: None, settings
) -> None:
    images = upload(project, owner, 3)
    (Path(settings.MEDIA_ROOT) / images[1].planes_path).write_bytes(b"not an array")
    embeddings = rows(images)
    compute.embeddings_compute(embedding_ids=[e.pk for e in embeddings])
    states = [Embedding.objects.get(pk=e.pk) for e in embeddings]
    assert [s.status for s in states] == ["ready", "failed", "ready"]
    assert states[1].error and not states[0].error


class FlakyBatchEngine:
    """Wraps an engine: its batch always fails, and one image fails alone too."""

    def __init__(self, inner: Engine, bad_height: int) -> None:
        self.inner, self.bad_height = inner, bad_height
        self.key, self.description = inner.key, inner.description
        self.embedded: list[int] = []

    def embed_batch(self, images_rgb: list[np.ndarray]) -> list[EmbeddingSet]:
        raise MemoryError("the batch does not fit")

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        if image_rgb.shape[0] == self.bad_height:
            raise ValueError("this image is refused")
        self.embedded.append(image_rgb.shape[0])
        return self.inner.embed(image_rgb)


@pytest.mark.django_db
def test_a_failed_batch_is_retried_image_by_image(
    project: Project, owner: User, tiny_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = upload(project, owner, 3)
    embeddings = rows(images)
    Embedding.objects.filter(pk=embeddings[0].pk).update(status=Embedding.Status.READY)
    real = compute._load(compute.engine_spec_for_key(embeddings[0].engine_key))  # type: ignore[arg-type]
    flaky = FlakyBatchEngine(real, bad_height=-1)
    monkeypatch.setattr(compute, "_load", lambda spec: flaky)
    compute.embeddings_compute(embedding_ids=[e.pk for e in embeddings])
    states = [Embedding.objects.get(pk=e.pk).status for e in embeddings]
    assert states == ["ready", "ready", "ready"]
    assert len(flaky.embedded) == 2  # the ready one was not computed again

    flaky.bad_height = images[2].height
    Embedding.objects.filter(pk__in=[e.pk for e in embeddings]).update(status="pending")
    compute.embeddings_compute(embedding_ids=[e.pk for e in embeddings])
    failed = Embedding.objects.get(pk=embeddings[2].pk)
    assert failed.status == "failed" and "refused" in failed.error


@pytest.mark.django_db
def test_a_missing_model_fails_its_embeddings(
    project: Project, owner: User, tiny_model: None
) -> None:
    embeddings = rows(upload(project, owner, 2))
    Embedding.objects.filter(pk=embeddings[0].pk).update(engine_key="gone-1")
    compute.embeddings_compute(embedding_ids=[e.pk for e in embeddings] + [10**9])
    first, second = (Embedding.objects.get(pk=e.pk) for e in embeddings)
    assert first.status == "failed" and "no longer installed" in first.error
    assert second.status == "ready"


@pytest.mark.django_db
def test_scheduling_several_images_enqueues_batches(
    project: Project,
    owner: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks,
) -> None:
    images = upload(project, owner, 3)
    sent: list[object] = []
    from backend.segmentation import tasks

    monkeypatch.setattr(tasks.compute_embeddings, "delay", sent.append)
    monkeypatch.setattr(tasks.compute_embedding, "delay", lambda i: sent.append([i]))
    monkeypatch.setattr(services, "EMBEDDINGS_PER_TASK", 2)
    Embedding.objects.filter(image=images[0]).update(status=Embedding.Status.READY)
    Embedding.objects.filter(image__in=images[1:]).update(status=Embedding.Status.FAILED)
    extra = upload(project, owner, 2)
    with django_capture_on_commit_callbacks(execute=True):
        scheduled = services.embeddings_schedule(images=[*images, *extra])
    assert [e.status for e in scheduled] == ["ready", "pending", "pending", "pending", "pending"]
    ids = [e.pk for e in scheduled[1:]]
    assert sent[-2:] == [ids[:2], ids[2:]]


def test_batches_hold_fewer_images_when_they_are_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "BATCH_SIZE", 3)
    monkeypatch.setattr(compute, "BATCH_PIXELS", 100)
    sized = [(1, 10), (2, 10), (3, 10), (4, 10), (5, 95), (6, 200), (7, 5)]
    assert list(compute._batches(sized)) == [[1, 2, 3], [4], [5], [6], [7]]


@pytest.mark.parametrize(
    ("precision", "dtype"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)]
)
def test_the_worker_embeds_in_the_settings_precision_and_batch(
    tmp_path: Path, settings: Any, precision: str, dtype: torch.dtype
) -> None:
    settings.EMBED_DEVICE, settings.EMBED_PRECISION, settings.EMBED_BATCH = "cpu", precision, 3
    spec = tiny_spec(tmp_path)
    registry.forget()
    try:
        engine = engine_for(spec, decoding_only=False)
        inner = engine.inner if isinstance(engine, TiledEngine) else engine
        assert isinstance(inner, SamEngine) and inner.encoder is not None
        assert (inner.encoder.dtype, inner.encoder.max_batch) == (dtype, 3)
        assert inner.encoder.device.type == "cpu"
    finally:
        registry.forget()
