"""The optimised decode path against segment_anything's float32 reference.

maskroom decodes with two ONNX graphs (image-side tensors kept per image, the
prompt side per click), upsamples only around the mask, from taps rather
than full-frame interpolation, and run-length encodes column-major crops.
Each of these must give SamPredictor's masks: correctness only, no timing.
The tiny SAM has the real prompt encoder and mask decoder.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from segment_anything import SamPredictor
from segment_anything.modeling.common import LayerNorm2d
from torch.nn import functional

from tests.tiny_sam import (
    build_tiny_sam,
    result_mask,
    synthetic_cells,
    tiny_spec,
)
from worker import rle
from worker.engines.base import EmbeddingSet, MaskResult, Prompt, Tile
from worker.engines.sam import masks as sam_masks
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import EngineSpec
from worker.metrics import iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IMAGE_SIZE = (300, 420)  # (H, W): not square, so the padding matters


@pytest.fixture(scope="module")
def predictor() -> SamPredictor:
    reference = SamPredictor(build_tiny_sam())
    reference.set_image(synthetic_cells(IMAGE_SIZE))
    return reference


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> SamEngine:
    spec = tiny_spec(tmp_path_factory.mktemp("models"))
    models = tmp_path_factory.mktemp("onnx")
    return SamEngine(spec, load_image_encoder=False, backend="onnx", models_dir=models, threads=1)


@pytest.fixture(scope="module")
def embedding(engine: SamEngine, predictor: SamPredictor) -> EmbeddingSet:
    """What the embedding store holds for the reference's features: float16."""
    with torch.inference_mode():
        features = predictor.features[0].numpy().astype(np.float16)
    height, width = IMAGE_SIZE
    return EmbeddingSet(
        engine_key=engine.key,
        image_height=height,
        image_width=width,
        tiles=[Tile(0, 0, width, height)],
        arrays=[features],
        meta={"input_size": list(predictor.input_size), "original_size": [height, width]},
    )


def full_frame(result: MaskResult) -> np.ndarray:
    return result_mask(result, IMAGE_SIZE)


def reference(
    predictor: SamPredictor, prompt: Prompt, mask_input: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """SamPredictor's mask and logits, chosen as maskroom chooses."""
    points = prompt.points_xy_image
    box = prompt.box_xyxy_image
    multimask = mask_input is None and box is None and len(points) == 1
    masks, scores, logits = predictor.predict(
        np.array([p[:2] for p in points]) if points else None,
        np.array([p[2] for p in points]) if points else None,
        np.array(box) if box is not None else None,
        mask_input=mask_input,
        multimask_output=multimask,
    )
    best = int(np.argmax(scores)) if multimask else 0
    return masks[best], logits[best][None]


def objects(count: int, seed: int) -> list[list[Prompt]]:
    """Annotation sessions: a click, a box, or a box with a click, then refining clicks."""
    rng = np.random.default_rng(seed)
    height, width = IMAGE_SIZE
    sessions = []
    for i in range(count):
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        box = None
        if i % 3 > 0:
            w, h = rng.uniform(20, 150, 2)
            box = (x, y, float(min(x + w, width)), float(min(y + h, height)))
        points: tuple[tuple[float, float, int], ...] = () if i % 3 == 1 else ((x + 2, y + 2, 1),)
        steps = [Prompt(points_xy_image=points, box_xyxy_image=box)]
        for _ in range(i % 3):
            extra = (float(rng.uniform(0, width)), float(rng.uniform(0, height)), int(i % 2))
            points = (*points, extra)
            steps.append(Prompt(points_xy_image=points, box_xyxy_image=box))
        sessions.append(steps)
    return sessions


@pytest.mark.slow
def test_the_onnx_path_agrees_with_sam_predictor(
    engine: SamEngine, embedding: EmbeddingSet, predictor: SamPredictor
) -> None:
    assert engine.backend == "onnx"
    ious, areas = [], []
    for steps in objects(24, seed=3):  # 48 prompts: clicks, boxes, refinements
        previous, logits = None, None
        for prompt in steps:
            previous = engine.decode(embedding, prompt, previous)
            want, logits = reference(predictor, prompt, logits)
            ious.append(iou(full_frame(previous), want))
            areas.append(int(want.sum()))
    assert len(ious) >= 45
    assert np.mean(ious) >= 0.98, ious
    assert 0 < np.median(areas) < IMAGE_SIZE[0] * IMAGE_SIZE[1]


def test_a_kept_image_state_gives_the_same_masks(
    engine: SamEngine, embedding: EmbeddingSet
) -> None:
    prompt = Prompt(points_xy_image=((200.0, 150.0, 1),))
    first = engine.decode(embedding, prompt, None)
    again = engine.decode(embedding, prompt, None)
    assert np.array_equal(first.mask_crop, again.mask_crop) and first.score == again.score
    copy = EmbeddingSet(**{**embedding.__dict__, "arrays": [embedding.arrays[0].copy()]})
    fresh = engine.decode(copy, prompt, None)
    assert np.array_equal(first.mask_crop, fresh.mask_crop)


def assert_graphs_give_torchs_logits(
    engine: SamEngine, features: np.ndarray, *, multimask: bool, points: int = 2
) -> None:
    """The chosen output, and a refinement's state made from the kept image
    state by the rank-16 update, to float rounding; the proposal grid's four
    outputs too."""
    assert engine.onnx is not None
    rng = np.random.default_rng(5)
    for _ in range(4):
        coords = np.concatenate([rng.uniform(0, 1024, (points, 2)), [[0.0, 0.0]]])
        coords = coords.astype(np.float32)
        labels = np.array([1.0] + [0.0] * (points - 1) + [-1.0], dtype=np.float32)
        for mask_input in (None, rng.normal(0, 8, (1, 256, 256)).astype(np.float32)):
            want, want_ious = engine.decode_torch(features, coords, labels, mask_input)
            got, ious, index = engine.onnx.run(
                features, coords, labels, mask_input, multimask=multimask
            )
            assert index == (1 + int(np.argmax(want_ious[1:])) if multimask else 0)
            np.testing.assert_allclose(ious, want_ious, atol=1e-4)
            np.testing.assert_allclose(got, want[index], atol=1e-3 * np.abs(want).max())
        if points <= 8:
            every, _ = engine.onnx.run_all(features, coords, labels)
            want, _ = engine.decode_torch(features, coords, labels, None)
            np.testing.assert_allclose(every, want, atol=1e-3 * np.abs(want).max())


@pytest.mark.parametrize("multimask", [True, False])
def test_the_onnx_graphs_give_torchs_logits_with_and_without_a_mask_input(
    engine: SamEngine, embedding: EmbeddingSet, multimask: bool
) -> None:
    assert_graphs_give_torchs_logits(engine, embedding.arrays[0], multimask=multimask)


def test_the_plain_graph_for_many_points_gives_torchs_logits(
    engine: SamEngine, embedding: EmbeddingSet
) -> None:
    assert_graphs_give_torchs_logits(engine, embedding.arrays[0], multimask=False, points=12)


def test_the_graphs_hold_for_a_decoder_whose_norms_are_far_from_the_identity(
    tmp_path: Path,
) -> None:
    """A random init leaves every LayerNorm near the identity; a trained one's
    are not. The click graph folds the transformer's norms into its low-rank
    products, so spread their scales and shifts as training does."""
    sam = build_tiny_sam(seed=4)
    rng = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for module in sam.mask_decoder.modules():
            if isinstance(module, torch.nn.LayerNorm | LayerNorm2d):
                module.weight.mul_(torch.rand(module.weight.shape, generator=rng) * 2.7 + 0.3)
                module.bias.add_(torch.randn(module.bias.shape, generator=rng))
    path = tmp_path / "spread.pth"
    torch.save(sam.state_dict(), path)
    spec = EngineSpec(name="spread", arch="custom", checkpoint_path=str(path), sha256="ab" * 32)
    engine = SamEngine(
        spec, load_image_encoder=False, backend="onnx", models_dir=tmp_path, threads=1
    )
    features = np.random.default_rng(4).standard_normal((256, 64, 64)).astype(np.float16)
    for multimask in (True, False):
        assert_graphs_give_torchs_logits(engine, features, multimask=multimask)


def test_an_image_state_lives_no_longer_than_its_embedding(engine: SamEngine) -> None:
    assert engine.onnx is not None
    features = np.random.default_rng(0).standard_normal((256, 64, 64)).astype(np.float16)
    coords = np.array([[100.0, 100.0], [0.0, 0.0]], dtype=np.float32)
    labels = np.array([1.0, -1.0], dtype=np.float32)
    engine.onnx.run(features, coords, labels, None, multimask=True)
    assert id(features) in engine.onnx._states
    key = id(features)
    del features
    gc.collect()
    assert key not in engine.onnx._states


# -- upsampling ---------------------------------------------------------------


def torch_upsampled(
    logits: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
) -> np.ndarray:
    """SamPredictor.postprocess_masks over the whole frame, thresholded at 0."""
    up = functional.interpolate(torch.from_numpy(logits)[None, None], (1024, 1024), mode="bilinear")
    up = up[..., : input_size[0], : input_size[1]]
    return functional.interpolate(up, original_size, mode="bilinear")[0, 0].numpy() > 0


def region_upsampled(
    logits: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
) -> np.ndarray:
    crop, x0, y0 = sam_masks.upsample_region(logits, input_size, original_size)
    mask = np.zeros(original_size, dtype=bool)
    mask[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    return mask


def blob_logits(rng: np.random.Generator, input_size: tuple[int, int] = (1024, 1024)) -> np.ndarray:
    """A round object, centred inside the image's part of the 256x256 frame."""
    yy, xx = np.mgrid[:256, :256]
    centre = rng.uniform(0, 1, 2) * np.array(input_size) / 4
    logits = rng.uniform(5, 60) - np.hypot(yy - centre[0], xx - centre[1])
    return (logits + rng.normal(0, 1, logits.shape)).astype(np.float32)


@pytest.mark.parametrize(
    ("input_size", "original_size"),
    [
        ((1024, 1024), (1024, 1024)),
        ((1024, 1024), (512, 512)),
        ((731, 1024), (300, 420)),
        ((1024, 768), (1024, 768)),
        ((1024, 37), (2000, 72)),
        ((768, 1024), (1200, 1600)),
    ],
)
# Edge pixels only (the window analysis); noise over the image and a noisy
# patch (every pixel's value, over the whole image or a small region).
@pytest.mark.parametrize("kind", ["blob", "noise", "patch"])
def test_region_upsampling_equals_full_upsampling(
    input_size: tuple[int, int], original_size: tuple[int, int], kind: str
) -> None:
    rng = np.random.default_rng(7)
    for _ in range(3):
        if kind == "blob":
            logits = blob_logits(rng, input_size)
        elif kind == "noise":
            logits = rng.normal(0, 1, (256, 256)).astype(np.float32)
        else:
            logits = np.full((256, 256), -3.0, dtype=np.float32)
            rows, cols = input_size[0] // 4, input_size[1] // 4  # the image's logits
            h, w = min(24, rows), min(24, cols)
            y, x = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
            logits[y : y + h, x : x + w] = rng.normal(0, 1, (h, w))
        want = torch_upsampled(logits, input_size, original_size)
        got = region_upsampled(logits, input_size, original_size)
        assert want.any()
        # Float rounding may flip a pixel whose value is within 1e-7 of 0.
        assert (got != want).sum() <= max(2, want.sum() // 20_000)


def test_masks_come_column_major_and_encode_like_pycocotools() -> None:
    rng = np.random.default_rng(1)
    for kind in ("blob", "noise"):
        logits = blob_logits(rng) if kind == "blob" else rng.normal(0, 1, (256, 256)).astype("f4")
        crop, x0, y0 = sam_masks.upsample_region(logits, (731, 1024), (300, 420))
        assert crop.flags.f_contiguous
        encoded = rle.encode_crop(crop, x0, y0, 300, 420)
        full = region_upsampled(logits, (731, 1024), (300, 420))
        want = coco_mask.encode(np.asfortranarray(full.astype(np.uint8)))
        assert encoded["counts"] == want["counts"].decode("ascii")


def test_counts_strings_equal_pycocotools() -> None:
    rng = np.random.default_rng(2)
    for _ in range(200):
        runs = rng.integers(1, 2 ** int(rng.integers(1, 29)), int(rng.integers(1, 40)))
        runs[0] = rng.integers(0, 5)
        total = int(runs.sum())
        want = coco_mask.frPyObjects({"size": [1, total], "counts": runs.tolist()}, 1, total)
        assert rle.counts_to_string(runs) == want["counts"].decode("ascii")


def test_a_decode_engine_exported_once_is_reused(engine: SamEngine, tmp_path: Path) -> None:
    from worker.engines.sam.decoder.onnx import image_graph_path, onnx_path_for

    SamEngine(engine.spec, load_image_encoder=False, backend="onnx", models_dir=tmp_path)
    prompt_graph = onnx_path_for(tmp_path, engine.key)
    assert prompt_graph.is_file() and image_graph_path(prompt_graph).is_file()
