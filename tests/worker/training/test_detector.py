"""The box detector on SAM's embeddings (CellSAM's idea), with a tiny SAM
built from segment_anything's classes on crops of the real DSB 2018 nuclei:
training lowers the loss and finds the held-out crops' nuclei far better
than an untrained head; partial labels teach nothing about unlabelled
cells; the weights go to safetensors and back; an engine with a detector
proposes one mask per detected box, the same through ONNX and torch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from safetensors.torch import save_file

from tests.conftest import shared_data
from tests.tiny_sam import tiny_spec, torch_threads
from worker import rle
from worker.datasets.label_image import unpaint
from worker.engines.base import EmbeddingSet
from worker.engines.proposing import ProposalSettings
from worker.engines.sam.box_proposals import decode_boxes
from worker.engines.sam.detector import BoxHead, detect, detector_load, detector_save
from worker.engines.sam.engine import SamEngine
from worker.training.detector import (
    detector_train,
    detector_validation,
    match_boxes,
    view_boxes,
    view_targets,
)
from worker.training.sam_decoder import View, embedding_views

pytestmark = pytest.mark.slow

CROP = 128  # DSB pixels per side: a crop fills SAM's 1024 frame at x8


@pytest.fixture(scope="module")
def crops(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[SamEngine, list[EmbeddingSet], list[View]]:
    """The 16 crops of the DSB image, embedded by a tiny SAM, with their views."""
    engine = SamEngine(tiny_spec(tmp_path_factory.mktemp("tiny")), backend="auto")
    image = tifffile.imread(shared_data("nuclei_dsb2018/image.tif")).astype(np.float32)
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    low, high = np.percentile(image, (0.5, 99.5))
    gray = np.clip((image - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    embeddings, views = [], []
    with torch_threads(1):
        for y in range(0, 512, CROP):
            for x in range(0, 512, CROP):
                embedding = engine.embed(np.stack([gray[y : y + CROP, x : x + CROP]] * 3, -1))
                masks = [rle.decode(r) for _, r in unpaint(labels[y : y + CROP, x : x + CROP])]
                embeddings.append(embedding)
                views += embedding_views(embedding, masks, complete=True)
    return engine, embeddings, views


@pytest.fixture(scope="module")
def trained(crops: tuple[SamEngine, list[EmbeddingSet], list[View]]) -> tuple[BoxHead, list]:
    _, _, views = crops
    head = BoxHead()
    with torch_threads(1):
        curve = detector_train(head, views[:11], views[11:], epochs=15, seed=0)
    return head, curve


def test_training_lowers_the_loss_and_finds_the_held_out_nuclei(
    crops: tuple[SamEngine, list[EmbeddingSet], list[View]], trained: tuple[BoxHead, list]
) -> None:
    _, _, views = crops
    _, curve = trained
    assert [p["epoch"] for p in curve] == list(range(1, 16))
    assert curve[-1]["loss"] < 0.7 * curve[0]["loss"]
    assert curve[-1]["val_loss"] < curve[0]["val_loss"]
    untrained = detector_validation(BoxHead(), views[11:])["val_f1"]
    assert curve[-1]["val_f1"] > max(0.3, 3 * untrained)


def test_targets_mark_each_centre_and_its_box() -> None:
    masks = np.zeros((2, 256, 256), dtype=bool)
    masks[0, 10:20, 30:50] = True  # 80 x 40 in the 1024 frame, centre (160, 60)
    masks[1, 200:240, 200:240] = True
    view = View(np.zeros((256, 64, 64), np.float32), masks)
    np.testing.assert_allclose(view_boxes(view), [[120, 40, 200, 80], [800, 800, 960, 960]])
    targets = view_targets(view)
    assert targets.centres.sum() == 2 and targets.centres[3, 10] and targets.centres[55, 55]
    np.testing.assert_allclose(np.exp(targets.size[:, 3, 10]) * 16, [80, 40], rtol=1e-5)
    np.testing.assert_allclose(targets.offset[:, 3, 10], [0.0, 0.75], atol=1e-6)


def test_partial_labels_leave_unlabelled_areas_unknown() -> None:
    """Only cells near a labelled box are known background; an image said to
    be completely labelled is known everywhere."""
    masks = np.zeros((1, 256, 256), dtype=bool)
    masks[0, 10:20, 10:20] = True  # cells 2 to 4
    partial = view_targets(View(np.zeros((256, 64, 64), np.float32), masks))
    assert partial.known[3, 3] and partial.known[6, 6] and not partial.known[8, 8]
    assert not partial.known[40:, 40:].any()
    complete = view_targets(View(np.zeros((256, 64, 64), np.float32), masks, complete=True))
    assert complete.known.all()
    # An unmatched detection far from every label is not a false positive.
    truths = np.array([[40.0, 40.0, 80.0, 80.0]])
    found = np.array([[40.0, 40.0, 80.0, 80.0], [800.0, 800.0, 840.0, 840.0]])
    assert match_boxes(found, truths, partial.known) == (1, 0, 0)
    assert match_boxes(found, truths, complete.known) == (1, 1, 0)
    assert match_boxes(found[1:], truths, None) == (0, 1, 1)


def test_weights_round_trip_and_other_files_are_refused(
    crops: tuple[SamEngine, list[EmbeddingSet], list[View]],
    trained: tuple[BoxHead, list],
    tmp_path: Path,
) -> None:
    _, embeddings, _ = crops
    head, _ = trained
    detector_save(head, tmp_path / "head.safetensors")
    again = detector_load(tmp_path / "head.safetensors")
    features = embeddings[12].arrays[0]
    first, second = (
        detect(head.eval(), features, (1024, 1024)),
        detect(again, features, (1024, 1024)),
    )
    assert len(first.boxes) > 3
    np.testing.assert_allclose(first.boxes, second.boxes, atol=1e-4)
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a maskroom box detector"):
        detector_load(tmp_path / "other.safetensors")


def test_an_engine_with_a_detector_proposes_from_its_boxes(
    crops: tuple[SamEngine, list[EmbeddingSet], list[View]],
    trained: tuple[BoxHead, list],
    tmp_path: Path,
) -> None:
    engine, embeddings, _ = crops
    head, _ = trained
    detector_save(head, tmp_path / "head.safetensors")
    spec = tiny_spec(tmp_path)
    spec = dataclasses.replace(spec, detector_path=str(tmp_path / "head.safetensors"))
    with_detector = SamEngine(spec, load_image_encoder=False, backend="auto")
    assert with_detector.onnx is not None and with_detector.embedding_key == engine.embedding_key
    embedding = embeddings[12]
    found = detect(head.eval(), embedding.arrays[0], (1024, 1024))
    with torch_threads(1):
        candidates = with_detector.propose(embedding, ProposalSettings())
        assert 0 < len(candidates) <= len(found.boxes)
        np.testing.assert_allclose(sorted(c.score for c in candidates)[-1], found.scores[0],
                                   rtol=1e-5)  # fmt: skip
        # The ONNX decoder and segment_anything's modules give the same box masks.
        onnx = decode_boxes(with_detector, embedding.arrays[0], found.boxes[:4])
        with_detector.onnx, onnx_decoder = None, with_detector.onnx
        torch_masks = decode_boxes(with_detector, embedding.arrays[0], found.boxes[:4])
        with_detector.onnx = onnx_decoder
    agree = ((onnx > 0) == (torch_masks > 0)).mean()
    assert agree > 0.999
