"""MedSAM's preprocessing, checked against MedSAM's reference inference
(MedSAM_Inference.py in bowang-lab/MedSAM) run step by step here on a tiny
SAM built from segment_anything's classes: the image resized to 1024 x 1024
whatever its aspect (scikit-image, bicubic, anti-aliased, cut to uint8) and
scaled to [0, 1] by its minimum and maximum, straight into the image
encoder; the box scaled per axis to the 1024 frame; the single-mask logits
upsampled bilinearly to the image size and thresholded at probability 0.5.
The engine must give the same embedding and the same mask, for a
non-square image (the per-axis scaling matters), through both decoders."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
from skimage.transform import resize
from torch.nn import functional

from tests.tiny_sam import result_mask, save_tiny_checkpoint, synthetic_cells
from worker.engines.base import Prompt
from worker.engines.sam import loading as sam_loading
from worker.engines.sam.engine import SamEngine
from worker.engines.spec import EngineSpec
from worker.metrics import iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = (240, 400)  # (H, W)
BOX = (90.0, 40.0, 260.0, 190.0)  # x0, y0, x1, y1 in image pixels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny.pth", seed=3)


def spec(checkpoint: Path, preprocessing: str) -> EngineSpec:
    return EngineSpec(name="tiny-med", arch="custom", checkpoint_path=str(checkpoint),
                      sha256="ef" * 32, preprocessing=preprocessing)  # fmt: skip


def medsam_reference(checkpoint: Path, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embedding (256, 64, 64), mask (H, W)) as MedSAM's reference inference computes them."""
    sam = sam_loading.load_sam(checkpoint, "custom").eval()
    height, width = image.shape[:2]
    img_1024 = resize(image, (1024, 1024), order=3, preserve_range=True,
                      anti_aliasing=True).astype(np.uint8)  # fmt: skip
    img_1024 = (img_1024 - img_1024.min()) / np.clip(
        img_1024.max() - img_1024.min(), a_min=1e-8, a_max=None
    )
    tensor = torch.tensor(img_1024).float().permute(2, 0, 1).unsqueeze(0)
    box_1024 = np.array(BOX) / np.array([width, height, width, height]) * 1024
    with torch.no_grad():
        embedding = sam.image_encoder(tensor)
        box = torch.as_tensor(box_1024[None], dtype=torch.float)[:, None, :]
        sparse, dense = sam.prompt_encoder(points=None, boxes=box, masks=None)
        low_res, _ = sam.mask_decoder(
            image_embeddings=embedding,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        probability = functional.interpolate(
            torch.sigmoid(low_res), size=(height, width), mode="bilinear", align_corners=False
        )
    return embedding[0].numpy(), probability.squeeze().numpy() > 0.5


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_engine_agrees_with_medsams_reference_inference(
    checkpoint: Path, backend: Literal["torch", "onnx"], tmp_path: Path
) -> None:
    image = synthetic_cells(SIZE, seed=4)
    expected_embedding, expected_mask = medsam_reference(checkpoint, image)
    assert 0.01 < expected_mask.mean() < 0.99  # a mask that can disagree
    engine = SamEngine(spec(checkpoint, "medsam"), backend=backend, models_dir=tmp_path)
    assert engine.backend == backend
    embedding = engine.embed(image)
    assert embedding.meta["input_size"] == [1024, 1024]
    np.testing.assert_allclose(
        embedding.arrays[0].astype(np.float32), expected_embedding, atol=2e-3, rtol=1e-2
    )
    result = engine.decode(embedding, Prompt(points_xy_image=(), box_xyxy_image=BOX), None)
    mask = result_mask(result, SIZE)
    assert iou(mask, expected_mask) >= 0.99
    assert np.count_nonzero(mask != expected_mask) <= 0.002 * mask.size


def test_sams_preprocessing_is_not_medsams(checkpoint: Path) -> None:
    """The same weights under SAM's preprocessing embed a different input:
    the registry's choice is what decides."""
    image = synthetic_cells(SIZE, seed=4)
    expected_embedding, _ = medsam_reference(checkpoint, image)
    sam_way = SamEngine(spec(checkpoint, "sam"), backend="torch").embed(image)
    assert sam_way.meta["input_size"] == [614, 1024]
    difference = np.abs(sam_way.arrays[0].astype(np.float32) - expected_embedding).max()
    assert difference > 0.05
    assert spec(checkpoint, "medsam").key != spec(checkpoint, "sam").key
