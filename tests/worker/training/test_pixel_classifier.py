"""The pixel classifier learns nuclei from part of a real DSB 2018 image and
the classical engine segments the rest better with it: fewer clicks, better
first masks; which pixels count as known; saving without pickle."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from scipy import ndimage as ndi
from skops.io import dump

from tests.conftest import shared_data
from worker import rle
from worker.datasets.label_image import unpaint
from worker.engines.classical.engine import ClassicalEngine
from worker.engines.classical.pixel_classifier import (
    BACKGROUND,
    BOUNDARY,
    INTERIOR,
    PixelClassifier,
)
from worker.engines.spec import EngineSpec
from worker.evaluation import simulate_object
from worker.training.cancelling import TrainingCancelledError
from worker.training.pixel_classifier import LabelledImage, pixel_classifier_train
from worker.training.targets import MARGIN, UNKNOWN, pixel_targets
from worker.training.validation import ValidationImage, better, validation_figures


@dataclass(frozen=True)
class Nuclei:
    rgb: np.ndarray
    labels: np.ndarray


@pytest.fixture(scope="module")
def nuclei() -> Nuclei:
    image = tifffile.imread(shared_data("nuclei_dsb2018/image.tif")).astype(np.float32)
    low, high = np.percentile(image, (0.5, 99.5))
    gray = np.clip((image - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    return Nuclei(np.stack([gray] * 3, axis=-1), labels)


@dataclass(frozen=True)
class Trained:
    classifier: PixelClassifier
    curve: list[dict]
    path: Path


@pytest.fixture(scope="module")
def trained(nuclei: Nuclei, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Trained on the top half, validated on the bottom half."""
    top = LabelledImage(nuclei.rgb[:256], pixel_targets(nuclei.labels[:256]))
    bottom = LabelledImage(nuclei.rgb[256:], pixel_targets(nuclei.labels[256:]))
    classifier, curve = pixel_classifier_train([top], [bottom])
    path = tmp_path_factory.mktemp("classifier") / "pixels.skops"
    classifier.save(path)
    return Trained(classifier, curve, path)


def test_a_partly_labelled_image_teaches_no_background_inside_the_unlabelled_objects(
    nuclei: Nuclei,
) -> None:
    values = np.unique(nuclei.labels[nuclei.labels > 0])
    kept = values[:10]
    partial = np.where(np.isin(nuclei.labels, kept), nuclei.labels, 0)
    targets = pixel_targets(partial)
    near_kept = ndi.distance_transform_edt(partial == 0) <= MARGIN
    for value in values[10:]:
        inside = nuclei.labels == value
        assert (targets[inside & ~near_kept] == UNKNOWN).all()
    assert (targets[partial > 0] != BACKGROUND).all()
    assert (targets[near_kept & (partial == 0)] == BACKGROUND).all()
    assert (targets[~near_kept] == UNKNOWN).all()
    # Said to be complete, every unlabelled pixel is background.
    complete = pixel_targets(nuclei.labels, complete=True)
    assert (complete[nuclei.labels == 0] == BACKGROUND).all()


def test_touching_objects_are_parted_by_their_boundaries() -> None:
    labels = np.zeros((20, 40), dtype=np.uint16)
    labels[5:15, 5:15], labels[5:15, 15:25] = 1, 2
    targets = pixel_targets(labels)
    assert (targets[6:14, 14:16] == BOUNDARY).all()  # both sides of the shared edge
    assert (targets[7:13, 7:13] == INTERIOR).all()
    assert targets[1, 5] == BACKGROUND and targets[10, 39] == UNKNOWN  # 4 and 15 px away


def test_training_lowers_its_losses(trained: Trained) -> None:
    losses = [p["loss"] for p in trained.curve]
    val_losses = [p["val_loss"] for p in trained.curve]
    assert [p["trees"] for p in trained.curve] == sorted(p["trees"] for p in trained.curve)
    assert losses[-1] < losses[0] and val_losses[-1] < val_losses[0]
    assert trained.curve[-1]["val_iou"] > 0.7


def test_the_classical_engine_clicks_and_proposes_better_with_the_classifier(
    nuclei: Nuclei, trained: Trained
) -> None:
    plain = ClassicalEngine()
    spec = EngineSpec(name="pixels", arch="classical", checkpoint_path=str(trained.path),
                      sha256="a" * 64)  # fmt: skip
    learned = ClassicalEngine(spec)
    assert learned.key == "pixels-aaaaaaaaaaaa" != plain.key
    truths = [r for _, r in unpaint(nuclei.labels[256:])]
    figures = {}
    for engine in (plain, learned):
        embedding = engine.embed(nuclei.rgb[256:])
        figures[engine.key] = validation_figures(engine, [ValidationImage(embedding, truths)])
    before, after = figures[plain.key], figures[learned.key]
    assert after["noc85"] < before["noc85"] - 1.0
    assert after["miou_at_1"] > before["miou_at_1"]
    assert after["proposal_f1"] > 0.8
    assert better(after, before) and not better(before, after)


def test_refining_clicks_on_an_em_object_map_get_better_not_worse(tmp_path: Path) -> None:
    """Between EM membranes the map is mostly object: a click where the
    classifier doubted must not turn the object into the dark side (the
    membranes), as it did before objects on a map were always bright."""
    em = np.asarray(PILImage.open(shared_data("em_membranes/image.png")))
    cells, _ = ndi.label(np.asarray(PILImage.open(shared_data("em_membranes/membranes.png"))) > 0)
    rgb = np.stack([em] * 3, axis=-1)
    classifier, _ = pixel_classifier_train(
        [LabelledImage(rgb[:256], pixel_targets(cells[:256]))],
        [LabelledImage(rgb[256:384], pixel_targets(cells[256:384]))],
    )
    classifier.save(tmp_path / "em.skops")
    learned = ClassicalEngine(EngineSpec("em", "classical", str(tmp_path / "em.skops"), "e" * 64))
    embedding = learned.embed(rgb[256:])
    traces = [simulate_object(learned, embedding, rle.decode(r), 3)
              for _, r in unpaint(cells[256:].astype(np.uint32))[:24]]  # fmt: skip
    first = np.mean([t.iou_after(1) for t in traces])
    third = np.mean([t.iou_after(3) for t in traces])
    collapses = [t.ious for t in traces
                 if any(later < 0.5 * earlier for earlier, later in pairwise(t.ious))]  # fmt: skip
    assert third > first + 0.1, (first, third)
    assert len(collapses) <= 1, collapses


def test_cancelling_stops_before_the_next_stage(nuclei: Nuclei) -> None:
    top = LabelledImage(nuclei.rgb[:128], pixel_targets(nuclei.labels[:128]))
    stages: list[int] = []
    with pytest.raises(TrainingCancelledError):
        pixel_classifier_train([top], [top], stage_done=lambda p: stages.append(p["epoch"]),
                               cancelled=lambda: len(stages) >= 1)  # fmt: skip
    assert stages == [1]


def test_a_saved_classifier_reads_back_the_same_and_a_foreign_file_is_refused(
    nuclei: Nuclei, trained: Trained, tmp_path: Path
) -> None:
    crop = nuclei.rgb[300:364, 300:364]
    again = PixelClassifier.load(trained.path)
    assert np.array_equal(again.probabilities(crop), trained.classifier.probabilities(crop))
    foreign = tmp_path / "foreign.skops"
    dump({"forest": trained.classifier.forest, "extra": Path("/etc/passwd")}, foreign)
    with pytest.raises(ValueError, match="not a pixel classifier"):
        PixelClassifier.load(foreign)


def test_an_image_taller_than_a_band_gets_the_features_of_the_whole(
    nuclei: Nuclei, trained: Trained
) -> None:
    """Bands with halos: the object map of a 512-row image equals that of
    the image computed in one band."""
    from worker.engines.classical import pixel_classifier as module

    whole = trained.classifier.object_map(nuclei.rgb)
    saved = module.BAND_ROWS
    module.BAND_ROWS = 1024
    try:
        one_band = trained.classifier.object_map(nuclei.rgb)
    finally:
        module.BAND_ROWS = saved
    assert np.abs(whole - one_band).max() < 0.05
