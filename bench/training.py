"""The model learns the project, measured on real labelled data
(../shared/data): each kind of training, its time on this machine, and the
validation figures before and after it on held-out images.

Cases, each trained on one part and validated on another that it never saw:
- DSB 2018 nuclei (fluorescence): trained on the top half, validated on the
  bottom half; and again from only 10 labelled nuclei of the top half (the
  partial labels a lab starts with: the rest must not count as background);
- the nuclei time-lapse: frames 0 to 2 train, 3 to 5 validate;
- EM membranes (serial-section TEM): the cells are the regions between the
  membranes; top half trains, bottom half validates.

Kinds: the pixel classifier on the classical engine ("before" is the plain
classical engine, what a fresh install without SAM weights uses); on SAM
vit_b with random weights (no trained checkpoint can be had here: the
absolute figures mean little, the gain and the cost count): decoder
adaptation on the stored embeddings, every case but the partial labels
(DECODER_EPOCHS epochs of DECODER_OBJECTS objects); LoRA of rank 4 on the
same cases (LORA_EPOCHS epochs, its own embeddings); the box detector on the
stored embeddings, every case, against the click grid's proposals (the F1
of their boxes, and the time to propose). Timed in process through
worker/training, the code the Celery job runs (the job adds only database
reads and writes). The images are rendered as the model sees them
(backend/images/rendering: each channel stretched to 8 bits).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage as ndi

from bench.common import Table, bench_home, django_ready, options, random_vit_b_checkpoint
from worker.datasets.label_image import unpaint
from worker.engines.base import Engine
from worker.engines.classical.engine import ClassicalEngine
from worker.engines.sam.detector import BoxHead, detector_save
from worker.engines.sam.encoder import BatchEncoder
from worker.engines.sam.engine import SamEngine
from worker.engines.sam.loading import load_decoder, load_sam
from worker.engines.spec import EngineSpec
from worker.proposals.pipeline import propose
from worker.training.detector import detector_train
from worker.training.lora import LoraImage, lora_merge, lora_save, lora_train, lora_wrap
from worker.training.pixel_classifier import LabelledImage, pixel_classifier_train
from worker.training.sam_decoder import decoder_save, decoder_train, embedding_views
from worker.training.targets import pixel_targets
from worker.training.validation import ValidationImage, validation_figures

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PARTIAL_LABELS = 10
DECODER_EPOCHS, DECODER_OBJECTS = 3, 32
DETECTOR_EPOCHS = 30
LORA_EPOCHS, LORA_OBJECTS = 3, 16
FIGURES = ("objects", "noc85", "noc90", "miou_at_1", "miou_at_3", "miou_at_5", "box_iou",
           "proposal_f1", "proposal_pq")  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    train: list[tuple[np.ndarray, np.ndarray]]  # (RGB, label image)
    val: list[tuple[np.ndarray, np.ndarray]]


def rgb(plane: np.ndarray) -> np.ndarray:
    django_ready()  # rendering.py sits in a Django app: settings first
    from backend.images.rendering import planes_to_rgb8

    return planes_to_rgb8(plane[None])


def cases() -> Iterator[Case]:
    image = tifffile.imread(DATA / "nuclei_dsb2018/image.tif")
    labels = tifffile.imread(DATA / "nuclei_dsb2018/labels.tif")
    top, bottom = (rgb(image[:256]), labels[:256]), (rgb(image[256:]), labels[256:])
    yield Case("DSB 2018 nuclei, halves", [top], [bottom])
    kept = np.unique(labels[:256][labels[:256] > 0])[:PARTIAL_LABELS]
    partial = np.where(np.isin(labels[:256], kept), labels[:256], 0)
    yield Case(f"DSB 2018 nuclei, {PARTIAL_LABELS} labelled", [(top[0], partial)], [bottom])
    frames = tifffile.imread(DATA / "nuclei_timelapse/images.tif")
    truth = tifffile.imread(DATA / "nuclei_timelapse/labels.tif")
    pairs = [(rgb(f), t) for f, t in zip(frames, truth, strict=True)]
    yield Case("nuclei time-lapse, frames", pairs[:3], pairs[3:])
    em = np.asarray(Image.open(DATA / "em_membranes/image.png"))
    cells, _ = ndi.label(np.asarray(Image.open(DATA / "em_membranes/membranes.png")) > 0)
    yield Case("EM membranes, halves", [(rgb(em[:256]), cells[:256])],
               [(rgb(em[256:]), cells[256:])])  # fmt: skip


def figures(engine: Engine, case: Case) -> tuple[dict[str, object], float]:
    """The validation figures and the embedding time per image (ms)."""
    started = time.perf_counter()
    embeddings = [engine.embed(image) for image, _ in case.val]
    embed_ms = (time.perf_counter() - started) * 1000 / len(case.val)
    images = [ValidationImage(e, [r for _, r in unpaint(labels.astype(np.uint32))])
              for e, (_, labels) in zip(embeddings, case.val, strict=True)]  # fmt: skip
    return validation_figures(engine, images), embed_ms


def run() -> list[Table]:
    quick = options().quick
    table = Table(
        title="The model learns the project: pixel classifier, validation images only",
        columns=["case", "model", *FIGURES, "NoC@85 after/before", "train s", "embed ms/image"],
    )
    folder = bench_home() / "training"
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases():
        if quick and "labelled" in case.name:
            continue
        plain = ClassicalEngine()
        before, plain_ms = figures(plain, case)
        started = time.perf_counter()
        classifier, curve = pixel_classifier_train(
            [LabelledImage(i, pixel_targets(t)) for i, t in case.train],
            [LabelledImage(i, pixel_targets(t)) for i, t in case.val],
        )
        seconds = time.perf_counter() - started
        path = folder / "pixels.skops"
        classifier.save(path)
        learned = ClassicalEngine(EngineSpec("pixels", "classical", str(path), "0" * 64))
        after, learned_ms = figures(learned, case)
        table.add(case.name, "classical", *(before[f] for f in FIGURES), "", "", plain_ms)
        ratio = float(after["noc85"]) / float(before["noc85"])  # type: ignore[arg-type]
        table.add("", "+ pixel classifier", *(after[f] for f in FIGURES), f"{ratio:.2f}",
                  seconds, learned_ms)  # fmt: skip
        table.notes.append(
            f"{case.name}: curve (trees: loss / val loss / val IoU) "
            + ", ".join(
                f"{p['trees']}: {p['loss']:.3f}/{p['val_loss']:.3f}/{p['val_iou']:.3f}"
                for p in curve
            )
        )
    if not quick:
        for case in cases():
            if "labelled" not in case.name:
                _decoder_rows(table, case, folder)
                _lora_rows(table, case, folder)
    table.notes.append(
        "NoC@85/90: clicks of the simulated annotator to IoU 0.85/0.90 (at most 20); IoU@k "
        "after k clicks; F1 and PQ of automatic proposals at IoU 0.5 (proposals far from "
        "every labelled object are not counted: the labels may be partial)."
    )
    return [table] if quick else [table, _detector_table(folder)]


def _lora_rows(table: Table, case: Case, folder: Path) -> None:
    """LoRA (rank 4) on vit_b (random weights): new weights, new embeddings."""
    checkpoint = random_vit_b_checkpoint()
    sam = load_sam(checkpoint, "vit_b")
    model = lora_wrap(sam)
    encoder = BatchEncoder(sam.image_encoder, sam.pixel_mean, sam.pixel_std, device="auto")

    def images(pairs: list) -> list[LoraImage]:
        return [LoraImage(rgb, [labels == v for v in np.unique(labels[labels > 0])])
                for rgb, labels in pairs]  # fmt: skip

    started = time.perf_counter()
    curve = lora_train(model, encoder, images(case.train), images(case.val), epochs=LORA_EPOCHS,
                       objects=LORA_OBJECTS)  # fmt: skip
    seconds = time.perf_counter() - started
    path = folder / "lora.safetensors"
    lora_save(lora_merge(model), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()  # each case's own ONNX export
    adapted = SamEngine(EngineSpec("lora", "vit_b", str(path), digest))
    before = SamEngine(EngineSpec("sam_vit_b_random", "vit_b", str(checkpoint), "b" * 64))
    truths = [[r for _, r in unpaint(labels.astype(np.uint32))] for _, labels in case.val]
    rows = {}
    for name, engine in (("SAM vit_b (random)", before), ("+ LoRA rank 4", adapted)):
        started = time.perf_counter()
        val = [engine.embed(image) for image, _ in case.val]
        embed_ms = (time.perf_counter() - started) * 1000 / len(val)
        images_ = [ValidationImage(e, t) for e, t in zip(val, truths, strict=True)]
        rows[name] = (validation_figures(engine, images_, proposals=False), embed_ms)
    (after, after_ms), (base, _) = rows["+ LoRA rank 4"], rows["SAM vit_b (random)"]
    ratio = float(after["noc85"]) / float(base["noc85"])
    table.add(f"{case.name} (LoRA)", "+ LoRA rank 4", *(after.get(f) for f in FIGURES),
              f"{ratio:.2f}", seconds, after_ms)  # fmt: skip
    table.notes.append(
        f"{case.name}, LoRA ({LORA_EPOCHS} epochs of {LORA_OBJECTS} objects per image, "
        f"{encoder.device}): "
        + ", ".join(
            f"{p['epoch']}: {p['loss']:.3f}/{p['val_loss']:.3f}/{p['val_iou']:.3f}" for p in curve
        )
        + " (loss / val loss / val IoU after one click); its validation images embedded anew."
    )


def _label_views(embeddings: list, pairs: list) -> list:
    found = []
    for embedding, (_, labels) in zip(embeddings, pairs, strict=True):
        found += embedding_views(embedding, [labels == v for v in np.unique(labels[labels > 0])])
    return found


def _detector_table(folder: Path) -> Table:
    """The box detector on vit_b (random weights) embeddings, every case,
    against the click grid's proposals."""
    table = Table(
        title="The model learns the project: box detector on SAM vit_b (random weights) "
        "embeddings, validation images only",
        columns=["case", "proposals from", "box F1", "mask F1", "mask PQ", "found", "truths",
                 "propose ms/image", "train s", "val F1 by epoch 1/10/last"],
    )  # fmt: skip
    checkpoint = random_vit_b_checkpoint()
    base = EngineSpec("sam_vit_b_random", "vit_b", str(checkpoint), "b" * 64)
    engine = SamEngine(base)
    for case in cases():
        train = [engine.embed(image) for image, _ in case.train]
        val = [engine.embed(image) for image, _ in case.val]
        head = BoxHead()
        started = time.perf_counter()
        curve = detector_train(head, _label_views(train, case.train),
                               _label_views(val, case.val), epochs=DETECTOR_EPOCHS)  # fmt: skip
        seconds = time.perf_counter() - started
        path = folder / "detector.safetensors"
        detector_save(head, path)
        detecting = SamEngine(EngineSpec("detector", "vit_b", str(checkpoint), "d" * 64,
                                         embeddings_of=base.key, detector_path=str(path)),
                              load_image_encoder=False)  # fmt: skip
        truths = [[r for _, r in unpaint(labels.astype(np.uint32))] for _, labels in case.val]
        images = [ValidationImage(e, t) for e, t in zip(val, truths, strict=True)]
        for name, model in (("click grid (32 x 32)", engine), ("box detector", detecting)):
            started = time.perf_counter()
            found = sum(len(propose(model, e)) for e in val)
            ms = (time.perf_counter() - started) * 1000 / len(val)
            figures = validation_figures(model, images, max_objects=0)
            progress = (
                ""
                if model is engine
                else "/".join(f"{curve[i]['val_f1']:.2f}" for i in (0, min(9, len(curve) - 1), -1))
            )
            table.add(case.name if model is engine else "", name, figures["proposal_box_f1"],
                      figures["proposal_f1"], figures["proposal_pq"], found,
                      sum(len(t) for t in truths), ms, "" if model is engine else seconds,
                      progress)  # fmt: skip
    table.notes.append(
        f"Detector: {DETECTOR_EPOCHS} epochs on the training part's embeddings (CenterNet "
        "heat map, sizes and offsets on the 64 x 64 grid). box F1: at IoU 0.5 against the "
        "curated boxes (the detector's own boxes; the grid's proposals' bounding boxes); mask "
        "F1/PQ: the proposals' masks, which with random decoder weights mean little. "
        "propose ms: the whole proposal pipeline per validation image, one process."
    )
    return table


def _decoder_rows(table: Table, case: Case, folder: Path) -> None:
    """SAM decoder adaptation on vit_b (random weights) embeddings."""
    checkpoint = random_vit_b_checkpoint()
    base = EngineSpec("sam_vit_b_random", "vit_b", str(checkpoint), "b" * 64)
    engine = SamEngine(base)
    train = [engine.embed(image) for image, _ in case.train]
    val = [engine.embed(image) for image, _ in case.val]
    parts = load_decoder(checkpoint, "vit_b")
    started = time.perf_counter()
    curve = decoder_train(parts, _label_views(train, case.train), _label_views(val, case.val),
                          epochs=DECODER_EPOCHS, max_objects=DECODER_OBJECTS)  # fmt: skip
    seconds = time.perf_counter() - started
    path = folder / "decoder.safetensors"
    decoder_save(parts, path)
    adapted = SamEngine(EngineSpec("adapted", "vit_b", str(checkpoint), "c" * 64,
                                   decoder_path=str(path), embeddings_of=base.key))  # fmt: skip
    truths = [[r for _, r in unpaint(labels.astype(np.uint32))] for _, labels in case.val]
    rows = {}
    for name, model in (("SAM vit_b (random)", engine), ("+ adapted decoder", adapted)):
        images = [ValidationImage(e, t) for e, t in zip(val, truths, strict=True)]
        rows[name] = validation_figures(model, images, proposals=False)
    before, after = rows["SAM vit_b (random)"], rows["+ adapted decoder"]
    table.add(case.name, "SAM vit_b (random)", *(before.get(f) for f in FIGURES), "", "", "")
    ratio = float(after["noc85"]) / float(before["noc85"])
    table.add("", "+ adapted decoder", *(after.get(f) for f in FIGURES), f"{ratio:.2f}",
              seconds, "(reuses)")  # fmt: skip
    table.notes.append(
        f"{case.name}, decoder ({DECODER_EPOCHS} epochs of {DECODER_OBJECTS} objects): "
        + ", ".join(
            f"{p['epoch']}: {p['loss']:.3f}/{p['val_loss']:.3f}/{p['val_iou']:.3f}" for p in curve
        )
        + " (loss / val loss / val IoU after one click); proposals not run for SAM here "
        "(a 32 x 32 grid of decodes per image)."
    )
