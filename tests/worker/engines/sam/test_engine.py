"""SamEngine against segment_anything's own SamPredictor, on a tiny random SAM.

The tiny model has SAM's real prompt encoder and mask decoder and a small
ViT encoder that still makes (256, 64, 64) embeddings, so every frame
conversion and the decoder run exactly as with vit_b.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor, sam_model_registry
from torch.nn import functional

from tests.tiny_sam import (
    build_tiny_sam,
    result_mask,
    save_tiny_checkpoint,
    synthetic_cells,
)
from worker.engines import registry
from worker.engines.base import EmbeddingSet, Prompt
from worker.engines.classical.engine import ClassicalEngine
from worker.engines.sam import loading as sam_loading
from worker.engines.sam import masks as sam_masks
from worker.engines.sam.decoder.onnx import onnx_path_for
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import CLASSICAL_SPEC, EngineSpec
from worker.metrics import iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IMAGE_SIZE = (300, 420)  # (H, W): not square, so the padding matters


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny.pth")


@pytest.fixture(scope="module")
def spec(checkpoint: Path) -> EngineSpec:
    return EngineSpec(name="tiny", arch="custom", checkpoint_path=str(checkpoint), sha256="ab" * 32)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return synthetic_cells(IMAGE_SIZE)


@pytest.fixture(scope="module")
def torch_engine(spec: EngineSpec) -> SamEngine:
    return SamEngine(spec, backend="torch")


@pytest.fixture(scope="module")
def onnx_engine(spec: EngineSpec, tmp_path_factory: pytest.TempPathFactory) -> SamEngine:
    models = tmp_path_factory.mktemp("onnx")
    return SamEngine(spec, load_image_encoder=False, backend="onnx", models_dir=models)


@pytest.fixture(scope="module")
def embedding(torch_engine: SamEngine, image: np.ndarray) -> EmbeddingSet:
    return torch_engine.embed(image)


@pytest.fixture(scope="module")
def predictor(image: np.ndarray) -> SamPredictor:
    reference = SamPredictor(build_tiny_sam())  # the same seed as the checkpoint
    reference.set_image(image)
    return reference


def reference_mask(
    predictor: SamPredictor, prompt: Prompt, mask_input: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """SamPredictor's mask and logits for a prompt, chosen as SamEngine chooses."""
    points = prompt.points_xy_image
    coords = np.array([p[:2] for p in points], dtype=float) if points else None
    labels = np.array([p[2] for p in points]) if points else None
    box = np.array(prompt.box_xyxy_image) if prompt.box_xyxy_image else None
    multimask = mask_input is None and box is None and len(points) == 1
    masks, scores, logits = predictor.predict(
        coords, labels, box, mask_input=mask_input, multimask_output=multimask
    )
    best = int(np.argmax(scores)) if multimask else 0
    return masks[best], logits[best][None]


def random_prompts(count: int, seed: int) -> list[Prompt]:
    rng = np.random.default_rng(seed)
    height, width = IMAGE_SIZE
    prompts = []
    for i in range(count):
        n = 1 + i % 3
        points = tuple(
            (
                float(rng.uniform(0, width)),
                float(rng.uniform(0, height)),
                int(j == 0 or rng.random() < 0.5),
            )
            for j in range(n)
        )
        box = None
        if i % 4 == 3:
            x0, y0 = rng.uniform(0, width - 40), rng.uniform(0, height - 40)
            box = (
                float(x0),
                float(y0),
                float(x0 + rng.uniform(20, 120)),
                float(y0 + rng.uniform(20, 120)),
            )
            points = points[:1] if i % 8 == 3 else ()
        prompts.append(Prompt(points_xy_image=points, box_xyxy_image=box))
    return prompts


def test_the_embedding_is_sam_predictors(embedding: EmbeddingSet, predictor: SamPredictor) -> None:
    array = embedding.arrays[0]
    assert array.shape == (256, 64, 64) and array.dtype == np.float16
    assert embedding.meta["input_size"] == list(predictor.input_size)
    assert (embedding.image_height, embedding.image_width) == IMAGE_SIZE
    assert embedding.tiles[0].width == IMAGE_SIZE[1] and embedding.tiles[0].height == IMAGE_SIZE[0]
    reference = predictor.features[0].numpy()
    assert np.abs(array.astype(np.float32) - reference).max() < 1e-2 * np.abs(reference).max()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_masks_match_sam_predictor(
    backend: str,
    request: pytest.FixtureRequest,
    embedding: EmbeddingSet,
    predictor: SamPredictor,
) -> None:
    engine: SamEngine = request.getfixturevalue(f"{backend}_engine")
    ious, areas = [], []
    for prompt in random_prompts(16, seed=1):
        result = engine.decode(embedding, prompt, None)
        want, _ = reference_mask(predictor, prompt)
        ious.append(iou(result_mask(result, IMAGE_SIZE), want))
        areas.append(want.sum())
    assert min(ious) >= 0.98, ious
    # The random model's masks are neither empty nor everything.
    assert 0 < np.median(areas) < IMAGE_SIZE[0] * IMAGE_SIZE[1]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_refinement_feeds_back_the_previous_logits(
    backend: str,
    request: pytest.FixtureRequest,
    embedding: EmbeddingSet,
    predictor: SamPredictor,
) -> None:
    engine: SamEngine = request.getfixturevalue(f"{backend}_engine")
    first = Prompt(points_xy_image=((150.0, 120.0, 1),))
    second = Prompt(points_xy_image=((150.0, 120.0, 1), (260.0, 200.0, 0)))
    third = Prompt(points_xy_image=(*second.points_xy_image, (100.0, 90.0, 1)))

    result = engine.decode(embedding, first, None)
    _, logits = reference_mask(predictor, first)
    assert result.logits is not None and result.logits.shape == (1, 256, 256)
    for prompt in (second, third):
        result = engine.decode(embedding, prompt, result)
        want, logits = reference_mask(predictor, prompt, mask_input=logits)
        assert iou(result_mask(result, IMAGE_SIZE), want) >= 0.98


def test_onnx_agrees_with_torch_on_random_prompts(
    torch_engine: SamEngine, onnx_engine: SamEngine, embedding: EmbeddingSet
) -> None:
    assert onnx_engine.backend == "onnx"
    ious = []
    previous_t = previous_o = None
    for i, prompt in enumerate(random_prompts(24, seed=2)):
        if i % 5 == 0:
            previous_t = previous_o = None
        got_t = torch_engine.decode(embedding, prompt, previous_t)
        got_o = onnx_engine.decode(embedding, prompt, previous_o)
        ious.append(iou(result_mask(got_t, IMAGE_SIZE), result_mask(got_o, IMAGE_SIZE)))
        assert abs(got_t.score - got_o.score) < 1e-2
        previous_t, previous_o = got_t, got_o
    assert np.mean(ious) >= 0.98 and min(ious) >= 0.9


def test_the_onnx_decoder_is_cached_per_engine_key(spec: EngineSpec, tmp_path: Path) -> None:
    SamEngine(spec, load_image_encoder=False, backend="onnx", models_dir=tmp_path)
    cached = onnx_path_for(tmp_path, spec.key)
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    SamEngine(spec, load_image_encoder=False, backend="onnx", models_dir=tmp_path)
    assert cached.stat().st_mtime_ns == stamp

    cached.write_bytes(b"damaged")  # a broken cache is exported again, not trusted
    engine = SamEngine(spec, load_image_encoder=False, backend="auto", models_dir=tmp_path)
    assert engine.backend == "onnx" and cached.stat().st_size > 1000


def test_a_decoding_only_engine_has_no_image_encoder(
    spec: EngineSpec, embedding: EmbeddingSet, torch_engine: SamEngine, image: np.ndarray
) -> None:
    engine = SamEngine(spec, load_image_encoder=False, backend="torch")
    assert engine.image_encoder is None
    with pytest.raises(RuntimeError, match="decoding only"):
        engine.embed(image)
    prompt = Prompt(points_xy_image=((200.0, 150.0, 1),))
    got, want = engine.decode(embedding, prompt, None), torch_engine.decode(embedding, prompt, None)
    assert np.array_equal(got.mask_crop, want.mask_crop) and (got.x0, got.y0) == (want.x0, want.y0)


def test_the_crop_is_tight_and_in_image_pixels(
    torch_engine: SamEngine, embedding: EmbeddingSet
) -> None:
    result = torch_engine.decode(embedding, Prompt(points_xy_image=((50.0, 40.0, 1),)), None)
    crop = result.mask_crop
    assert crop.dtype == bool and crop.size > 0
    assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
    assert result.x0 + crop.shape[1] <= IMAGE_SIZE[1] and result.y0 + crop.shape[0] <= IMAGE_SIZE[0]


def test_an_embedding_of_another_engine_is_refused(
    torch_engine: SamEngine, embedding: EmbeddingSet
) -> None:
    other = EmbeddingSet("other-1", 10, 10, embedding.tiles, embedding.arrays, embedding.meta)
    with pytest.raises(ValueError, match="given to"):
        torch_engine.decode(other, Prompt(points_xy_image=((1.0, 1.0, 1),)), None)


@pytest.mark.parametrize(
    ("input_size", "original_size"),
    [
        ((1024, 1024), (1024, 1024)),
        ((731, 1024), (300, 420)),
        ((1024, 37), (2000, 72)),
        ((768, 1024), (3000, 4000)),
    ],
)
def test_region_upsampling_equals_torch_interpolation(
    input_size: tuple[int, int], original_size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    logits = (20 - np.hypot(yy - 60, xx - 6)).astype(np.float32)  # a blob of positive logits
    logits += rng.normal(0, 0.5, logits.shape).astype(np.float32)
    up = functional.interpolate(torch.from_numpy(logits)[None, None], (1024, 1024), mode="bilinear")
    up = up[..., : input_size[0], : input_size[1]]
    want = functional.interpolate(up, original_size, mode="bilinear")[0, 0].numpy() > 0

    crop, x0, y0 = sam_masks.upsample_region(logits, input_size, original_size)
    got = np.zeros(original_size, dtype=bool)
    got[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    assert want.any()
    assert (got != want).sum() <= max(2, want.sum() // 10_000)


def test_an_all_negative_mask_is_an_empty_crop() -> None:
    crop, x0, y0 = sam_masks.upsample_region(np.full((256, 256), -5.0), (1024, 1024), (500, 500))
    assert crop.shape == (0, 0) and (x0, y0) == (0, 0)


# -- loading -----------------------------------------------------------------


class NotATensor:
    """Pickled by reference: loading it would import and run this module's code."""


def meta_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """An official arch's state dict as shapes only (no memory, no init time)."""
    with torch.device("meta"):
        return sam_model_registry[arch]().state_dict()


@pytest.mark.parametrize("arch", ["vit_b", "vit_l", "vit_h"])
def test_it_reads_the_official_archs_from_their_shapes(arch: str) -> None:
    state = meta_state_dict(arch)
    assert sam_loading.infer_encoder_config(state) == sam_loading.OFFICIAL_CONFIGS[arch]
    assert sam_loading.config_for_arch(state, arch) == sam_loading.OFFICIAL_CONFIGS[arch]
    assert sam_loading.config_for_arch(state, "custom") == sam_loading.OFFICIAL_CONFIGS[arch]


def test_it_refuses_a_checkpoint_of_another_arch() -> None:
    with pytest.raises(sam_loading.CheckpointError, match="checkpoint is a vit_l, not vit_b"):
        sam_loading.config_for_arch(meta_state_dict("vit_l"), "vit_b")


def test_it_refuses_the_tiny_model_as_vit_b(checkpoint: Path) -> None:
    with pytest.raises(
        sam_loading.CheckpointError,
        match=r"custom ViT \(embed_dim 32, depth 2, 2 heads\), not vit_b",
    ):
        sam_loading.load_sam(checkpoint, "vit_b")


def test_it_names_missing_and_unexpected_keys(checkpoint: Path, tmp_path: Path) -> None:
    state = torch.load(checkpoint, weights_only=True)
    del state["mask_decoder.iou_token.weight"]
    state["mask_decoder.extra.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(sam_loading.CheckpointError) as caught:
        sam_loading.load_sam(broken, "custom")
    message = str(caught.value)
    assert "missing keys: mask_decoder.iou_token.weight" in message
    assert "unexpected keys: mask_decoder.extra.weight" in message


def test_it_unwraps_micro_sam_checkpoints(checkpoint: Path, tmp_path: Path) -> None:
    state = torch.load(checkpoint, weights_only=True)
    wrapped = {
        "model_state": {f"sam.{k}": v for k, v in state.items()},
        "decoder_state": {"head.weight": torch.zeros(2)},
        "epoch": 3,
    }
    path = tmp_path / "micro_sam.pt"
    torch.save(wrapped, path)
    sam = sam_loading.load_sam(path, "custom")
    assert torch.equal(sam.mask_decoder.iou_token.weight, state["mask_decoder.iou_token.weight"])


def test_it_refuses_files_that_are_not_weights(tmp_path: Path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(sam_loading.CheckpointError, match="not a PyTorch checkpoint"):
        sam_loading.read_state_dict(text)

    pickled = tmp_path / "code.pth"
    torch.save({"model": NotATensor()}, pickled)  # unpickling would need arbitrary code
    with pytest.raises(sam_loading.CheckpointError, match=r"Python objects besides weights"):
        sam_loading.read_state_dict(pickled)

    other = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(sam_loading.CheckpointError, match="not a SAM model"):
        sam_loading.read_state_dict(other)


# -- registry ----------------------------------------------------------------


def test_the_registry_loads_each_engine_once(spec: EngineSpec) -> None:
    registry.forget()
    try:
        decoder = registry.load_engine(spec, for_decoding_only=True)
        assert registry.load_engine(spec, for_decoding_only=True) is decoder
        assert isinstance(decoder, SamEngine) and decoder.image_encoder is None
        full = registry.load_engine(spec, for_decoding_only=False)
        assert isinstance(full, SamEngine) and full.image_encoder is not None
        assert registry.load_engine(spec, for_decoding_only=True) is full
        classical = registry.load_engine(CLASSICAL_SPEC, for_decoding_only=True)
        assert isinstance(classical, ClassicalEngine) and classical.key == "classical-1"
    finally:
        registry.forget()
