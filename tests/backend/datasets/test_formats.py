"""Each export format, read back with the library its users read it with:
pycocotools for COCO, tifffile for the label images and the Cellpose and
StarDist folders; the manifest with rocrate, the provenance with csv."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from pycocotools.coco import COCO
from rocrate.rocrate import ROCrate

from backend.annotations.export import pseudonym
from backend.annotations.models import Instance
from backend.datasets.models import Export, ImageSplit
from backend.datasets.run import export_run
from backend.datasets.splits import splits_change
from backend.images.rendering import image_model_rgb
from tests.backend.datasets.conftest import Dataset, exported, instance_masks, read_tiff
from tests.conftest import client_for
from worker import rle
from worker.datasets.label_image import label_dtype, unpaint
from worker.metrics import iou

pytestmark = pytest.mark.django_db


def split_of(image_id: int) -> str:
    return ImageSplit.objects.get(image_id=image_id).split


def stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def test_coco_is_read_by_pycocotools_with_every_mask_and_label(
    dataset: Dataset, owner: User, tmp_path: Path
) -> None:
    archive = exported(dataset.project, owner, "coco", images=True)
    splits = {split_of(i.pk) for i in (dataset.nuclei, dataset.cells)}
    assert {f"annotations/{s}.json" for s in splits} <= set(archive.namelist())
    seen = 0
    for split in splits:
        path = tmp_path / f"{split}.json"
        path.write_bytes(archive.read(f"annotations/{split}.json"))
        coco = COCO(str(path))
        labels = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        assert sorted(labels.values()) == ["cell", "nucleus"]
        for image_id in coco.getImgIds():
            entry = coco.loadImgs(image_id)[0]
            assert split_of(image_id) == split
            # The image itself is in the zip, channels kept, under the name COCO gives.
            pixels = read_tiff(archive, f"images/{split}/{entry['file_name']}")
            assert pixels.shape[-2:] == (entry["height"], entry["width"])
            masks = instance_masks(
                dataset.nuclei if image_id == dataset.nuclei.pk else dataset.cells
            )
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            assert sorted(a["id"] for a in annotations) == sorted(masks)
            for annotation in annotations:
                assert np.array_equal(
                    coco.annToMask(annotation).astype(bool), masks[annotation["id"]]
                )
                instance = Instance.objects.get(pk=annotation["id"])
                assert labels[annotation["category_id"]] == instance.label.name
            seen += len(annotations)
    assert seen == Instance.objects.filter(image__project=dataset.project).count() == 125 + 4
    cells_file = f"images/{split_of(dataset.cells.pk)}/bbbc022.tif"
    assert read_tiff(archive, cells_file).shape == (3, dataset.cells.height, dataset.cells.width)


def test_coco_polygons_trace_the_masks(dataset: Dataset, owner: User, tmp_path: Path) -> None:
    archive = exported(dataset.project, owner, "coco", polygons=True)
    split = split_of(dataset.nuclei.pk)
    path = tmp_path / "coco.json"
    path.write_bytes(archive.read(f"annotations/{split}.json"))
    coco = COCO(str(path))
    masks = instance_masks(dataset.nuclei)
    agreement = []
    for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[dataset.nuclei.pk])):
        assert isinstance(annotation["segmentation"], list) and annotation["segmentation"]
        agreement.append(iou(coco.annToMask(annotation).astype(bool), masks[annotation["id"]]))
    # Polygons along pixel edges' midpoints lose a little at the boundary, never an object.
    assert np.mean(agreement) > 0.85 and min(agreement) > 0.5


@pytest.mark.parametrize("fmt", ["labels", "cellpose", "stardist"])
def test_label_images_hold_one_value_per_instance(dataset: Dataset, owner: User, fmt: str) -> None:
    archive = exported(dataset.project, owner, fmt)
    for image in (dataset.nuclei, dataset.cells):
        split, name = split_of(image.pk), stem(image.name)
        mask_file, image_file = {
            "labels": (f"labels/{split}/{name}.tif", None),
            "cellpose": (f"{split}/{name}_masks.tif", f"{split}/{name}.tif"),
            "stardist": (f"{split}/masks/{name}.tif", f"{split}/images/{name}.tif"),
        }[fmt]
        labels = read_tiff(archive, mask_file)
        assert labels.dtype == np.uint16 and labels.shape == (image.height, image.width)
        # The same objects, each its own value, 0 the background.
        found = {k: rle_mask for k, rle_mask in unpaint(labels)}
        masks = list(instance_masks(image).values())
        assert len(found) == len(masks)
        assert np.array_equal(labels > 0, dataset.truth[image.pk] > 0)
        assert sorted(map(mask_key, masks)) == sorted(mask_key(decode(m)) for m in found.values())
        if image_file is not None:  # Cellpose and StarDist train on the image beside it
            assert read_tiff(archive, image_file).shape[-2:] == labels.shape
        if fmt == "labels":
            classes = json.loads(archive.read(f"labels/{split}/{name}.classes.json"))
            by_value = dict(
                zip(
                    range(1, len(masks) + 1),
                    Instance.objects.filter(image=image)
                    .order_by("id")
                    .values_list("label__name", flat=True),
                    strict=True,
                )
            )
            assert {int(k): v for k, v in classes.items()} == by_value


def decode(mask_rle: dict[str, object]) -> np.ndarray:
    from worker import rle

    return rle.decode(mask_rle)


def mask_key(mask: np.ndarray) -> bytes:
    return np.packbits(mask).tobytes()


def test_label_images_widen_past_65535_instances() -> None:
    assert label_dtype(65_535) == np.uint16 and label_dtype(65_536) == np.uint32


def test_every_export_carries_its_provenance_and_an_ro_crate(
    dataset: Dataset, owner: User, member: User, tmp_path: Path
) -> None:
    relabelled = Instance.objects.filter(image=dataset.nuclei).order_by("id").first()
    assert relabelled is not None
    from backend.annotations.services.instances import instance_update

    instance_update(instance=relabelled, user=member, version=relabelled.version,
                    label=dataset.project.labels.get(name="cell"))  # fmt: skip
    archive = exported(dataset.project, owner, "stardist")
    rows = list(csv.DictReader(io.StringIO(archive.read("provenance.csv").decode())))
    assert len(rows) == Instance.objects.filter(image__project=dataset.project).count()
    by_id = {int(r["instance"]): r for r in rows}
    first = by_id[relabelled.pk]
    olivia = pseudonym(project=dataset.project, user_id=owner.pk)
    mateo = pseudonym(project=dataset.project, user_id=member.pk)
    assert first["authors"].split() == [olivia, mateo]  # who made it, then who changed it
    assert first["label"] == "cell" and first["origin"] == "manual"
    assert first["created"] <= first["changed"]
    assert all(r["authors"] == olivia for i, r in by_id.items() if i != relabelled.pk)
    # The manifest is an RO-Crate that rocrate reads back.
    folder = tmp_path / "crate"
    archive.extractall(folder)
    crate = ROCrate(folder)
    assert "nuclei" in crate.name.lower() or dataset.project.name in crate.name
    names = {e.id for e in crate.data_entities}
    assert "provenance.csv" in names and any(n.startswith(("train", "val", "test")) for n in names)
    terms = {e["name"] for e in crate.get_entities() if e.type == "DefinedTerm"}
    assert terms == {"nucleus", "cell"}
    software = [e for e in crate.get_entities() if e.type == "SoftwareApplication"]
    assert any(e["name"] == "maskroom" and e["version"] for e in software)
    assert any(e.get("usedFor") == "prompts" for e in software)  # the project's model


def test_a_split_export_holds_only_that_split(dataset: Dataset, owner: User) -> None:
    ImageSplit.objects.update_or_create(
        image=dataset.nuclei, defaults={"split": "test", "by_hand": True}
    )
    ImageSplit.objects.update_or_create(
        image=dataset.cells, defaults={"split": "train", "by_hand": True}
    )
    archive = exported(dataset.project, owner, "cellpose", split="test")
    tiffs = sorted(n for n in archive.namelist() if n.endswith(".tif"))
    assert tiffs == ["test/nuclei.tif", "test/nuclei_masks.tif"]
    rows = list(csv.DictReader(io.StringIO(archive.read("provenance.csv").decode())))
    assert {int(r["image"]) for r in rows} == {dataset.nuclei.pk}


def test_an_annotator_exports_no_gold_truth(
    dataset: Dataset, member: User, project_annotator: User
) -> None:
    dataset.cells.gold = True
    dataset.cells.save()
    archive = exported(dataset.project, project_annotator, "coco")
    names = [n for n in archive.namelist() if n.startswith("annotations/")]
    images = [i["id"] for n in names for i in json.loads(archive.read(n))["images"]]
    assert images == [dataset.nuclei.pk]


def test_an_export_whose_makers_account_is_gone_holds_no_gold_truth(
    dataset: Dataset, member: User
) -> None:
    """Deleted before the worker wrote it: written as for a non-member (no
    gold), and only the leads may download it."""
    dataset.cells.gold = True
    dataset.cells.save()
    gone = User.objects.create_user("gone", password="pw-123456789")
    export = Export.objects.create(project=dataset.project, created_by=gone, format="coco",
                                   options={"split": "all"})  # fmt: skip
    gone.delete()
    export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.created_by is None and export.status == Export.Status.DONE, export.error
    archive = zipfile.ZipFile(export.path)
    names = [n for n in archive.namelist() if n.startswith("annotations/")]
    images = [i["id"] for n in names for i in json.loads(archive.read(n))["images"]]
    assert images == [dataset.nuclei.pk]
    assert client_for(member).get(f"/api/exports/{export.pk}/").status_code == 200  # a reviewer


@pytest.fixture
def project_annotator(dataset: Dataset) -> User:
    from backend.projects.models import Membership

    user = User.objects.create_user("ines", password="pw-123456789")
    Membership.objects.create(project=dataset.project, user=user, role=Membership.Role.ANNOTATOR)
    return user


def test_ome_zarr_is_read_by_ome_zarr_py_with_its_labels_and_classes(
    dataset: Dataset, owner: User, tmp_path: Path
) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    archive = exported(dataset.project, owner, "ome-zarr")
    archive.extractall(tmp_path)
    for image in (dataset.nuclei, dataset.cells):
        folder = tmp_path / split_of(image.pk) / f"{stem(image.name)}.zarr"
        nodes = list(Reader(parse_url(str(folder)))())
        pixels = next(n for n in nodes if isinstance(n.specs[0], Multiscales))
        assert tuple(pixels.data[0].shape) == (image.channels, image.height, image.width)
        labelled = next(n for n in nodes if any(isinstance(s, Label) for s in n.specs))
        labels = np.asarray(labelled.data[0])
        assert np.array_equal(labels > 0, dataset.truth[image.pk] > 0)
        names = Instance.objects.filter(image=image).order_by("id")
        classes = {v: p["class"] for v, p in labelled.metadata["properties"].items()}
        assert classes == dict(enumerate(names.values_list("label__name", flat=True), start=1))
        assert len(unpaint(labels)) == names.count()


def test_yolo_outlines_are_normalised_and_fill_back_to_the_masks(
    dataset: Dataset, owner: User
) -> None:
    import yaml

    from worker.datasets.polygons import fill_polygons

    archive = exported(dataset.project, owner, "yolo")
    data = yaml.safe_load(archive.read("data.yaml"))
    assert data["names"] == {0: "nucleus", 1: "cell"}
    image = dataset.cells
    split = split_of(image.pk)
    assert data[split] == f"images/{split}"
    lines = archive.read(f"labels/{split}/bbbc022.txt").decode().splitlines()
    masks = list(instance_masks(image).values())
    assert len(lines) == len(masks) == 4
    for line, mask in zip(lines, masks, strict=True):
        index, *values = line.split()
        assert index == "1"  # cell
        ring = [(float(x) * image.width, float(y) * image.height)
                for x, y in zip(values[0::2], values[1::2], strict=True)]  # fmt: skip
        assert np.array_equal(fill_polygons([ring], image.height, image.width), mask)
    assert f"images/{split}/bbbc022.png" in archive.namelist()


def test_ultralytics_reads_the_yolo_export_with_its_images_and_outlines(
    dataset: Dataset, owner: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ultralytics' own dataset check and loader: train and val found from
    data.yaml wherever it lies, every outline with its class, the pixels
    read as what the model saw (a 16-bit TIFF would have read black)."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "config"))
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset, polygon2mask
    from ultralytics.utils.patches import imread

    splits_change(project=dataset.project, images={dataset.nuclei.pk: "train",
                                                    dataset.cells.pk: "val"})  # fmt: skip
    exported(dataset.project, owner, "yolo").extractall(tmp_path / "export")
    data = check_det_dataset(str(tmp_path / "export" / "data.yaml"))
    assert data["names"] == {0: "nucleus", 1: "cell"}
    for split, image in (("train", dataset.nuclei), ("val", dataset.cells)):
        loaded = YOLODataset(img_path=data[split], data=data, task="segment", augment=False)
        assert len(loaded.labels) == 1
        labels = loaded.labels[0]
        assert labels["shape"] == (image.height, image.width)
        instances = Instance.objects.filter(image=image).order_by("id")
        names = [data["names"][int(c)] for c in labels["cls"].ravel()]
        assert names == list(instances.values_list("label__name", flat=True))
        scale = np.array([image.width, image.height])
        for segment, instance in zip(labels["segments"], instances, strict=True):
            # OpenCV fills a polygon's boundary pixels too: one pixel of slack.
            filled = polygon2mask((image.height, image.width), [(segment * scale).ravel()],
                                  color=1, downsample_ratio=1).astype(bool)  # fmt: skip
            mask = rle.decode(instance.rle)
            assert (filled & mask).sum() == mask.sum() and iou(filled, mask) > 0.5
        bgr = imread(loaded.im_files[0], flags=loaded.cv2_flag)  # how its loader reads
        assert bgr is not None
        assert np.array_equal(bgr[..., ::-1], image_model_rgb(image)) and bgr.std() > 10
