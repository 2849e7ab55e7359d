"""SAM decoder adaptation on stored embeddings, with a tiny SAM built from
segment_anything's classes (random weights: the figures mean nothing, their
movement does): the interactive recipe lowers the training and the
validation loss, the weights go to safetensors and back, objects land in
SAM's low-res frame where the image put them, cancelling stops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from tests.conftest import shared_data
from tests.tiny_sam import build_tiny_sam, tiny_spec, torch_threads
from worker import rle
from worker.datasets.label_image import unpaint
from worker.engines.sam.engine import SamEngine
from worker.engines.sam.loading import DecoderParts, load_decoder_override
from worker.training.cancelling import TrainingCancelledError
from worker.training.sam_decoder import (
    View,
    decoder_save,
    decoder_train,
    embedding_views,
    low_res_masks,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[View], list[View]]:
    """Two strips of the DSB nuclei embedded by a tiny SAM: one trains, one validates."""
    engine = SamEngine(tiny_spec(tmp_path_factory.mktemp("tiny")), backend="torch")
    image = tifffile.imread(shared_data("nuclei_dsb2018/image.tif")).astype(np.float32)
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    low, high = np.percentile(image, (0.5, 99.5))
    gray = np.clip((image - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    found = []
    with torch_threads(1):
        for rows in (slice(0, 96), slice(256, 352)):
            embedding = engine.embed(np.stack([gray[rows]] * 3, axis=-1))
            masks = [rle.decode(r) for _, r in unpaint(labels[rows])]
            found.append(embedding_views(embedding, masks))
    return found[0], found[1]


def fresh_decoder() -> DecoderParts:
    sam = build_tiny_sam()
    return DecoderParts(sam.prompt_encoder, sam.mask_decoder)


def test_the_objects_land_where_the_image_put_them() -> None:
    """A 96 x 512 strip is resized to 192 x 1024 and padded below: in the
    256 x 256 low-res frame its right-hand end is at column 255, row < 48."""
    masks = np.zeros((1, 96, 512), dtype=bool)
    masks[0, 10:30, 480:512] = True
    low = low_res_masks(masks, (192, 1024), (96, 512))[0]
    rows, cols = np.nonzero(low)
    assert cols.max() == 255 and cols.min() == 240
    assert rows.min() == 5 and rows.max() == 14 and not low[48:].any()


def test_training_lowers_the_loss_and_the_validation_loss(
    views: tuple[list[View], list[View]], tmp_path: Path
) -> None:
    train, val = views
    assert sum(v.masks.shape[0] for v in train) > 10
    decoder = fresh_decoder()
    with torch_threads(1):
        curve = decoder_train(decoder, train, val, epochs=3, seed=0, max_objects=6,
                              corrections=1)  # fmt: skip
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert curve[-1]["loss"] < curve[0]["loss"]
    assert curve[-1]["val_loss"] < curve[0]["val_loss"]
    assert 0.0 <= curve[-1]["val_iou"] <= 1.0

    # Saved as safetensors and loaded over a fresh decoder: the same weights.
    path = tmp_path / "decoder.safetensors"
    decoder_save(decoder, path)
    again = fresh_decoder()
    load_decoder_override(again, path)
    for mine, theirs in zip(decoder.mask_decoder.state_dict().values(),
                            again.mask_decoder.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(mine, theirs)
    assert not torch.equal(next(iter(fresh_decoder().mask_decoder.state_dict().values())),
                           next(iter(decoder.mask_decoder.state_dict().values())))  # fmt: skip


def test_cancelling_stops_before_the_next_epoch(views: tuple[list[View], list[View]]) -> None:
    train, val = views
    seen: list[int] = []
    with torch_threads(1), pytest.raises(TrainingCancelledError):
        decoder_train(fresh_decoder(), train[:1], val[:1], epochs=5, max_objects=2,
                      stage_done=lambda p: seen.append(p["epoch"]),
                      cancelled=lambda: len(seen) >= 1)  # fmt: skip
    assert seen == [1]
