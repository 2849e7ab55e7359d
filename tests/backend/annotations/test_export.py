"""COCO export: loads with pycocotools and decodes to the saved masks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image as PILImage
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.projects.models import Label, Project
from tests.conftest import client_for, shared_data

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*"),
]


def rle_of(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


def upload_png(user: User, project: Project, height: int, width: int, name: str) -> int:
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((height, width), np.uint8)).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = name
    response = client_for(user).post(f"/api/projects/{project.pk}/images/", {"file": buffer})
    return response.json()["images"][0]["id"]


def save(user: User, image_id: int, label: str, mask: np.ndarray, state: str = "accepted") -> int:
    if state == "proposed":  # as the server saves proposals: clients cannot
        image = Image.objects.get(pk=image_id)
        found = Label.objects.get(project=image.project, name=label)
        made = instance_create(image=image, user=user, label=found, rle=rle_of(mask), state=state)
        return made.pk
    response = client_for(user).post(
        f"/api/images/{image_id}/instances/",
        {"label": label, "rle": rle_of(mask)},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def export(user: User, project: Project, fmt: str = "coco"):
    return client_for(user).get(f"/api/projects/{project.pk}/export/?format={fmt}")


def test_export_loads_in_pycocotools_and_decodes_to_the_saved_masks(
    project: Project, owner: User, member: User, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    first = upload_png(owner, project, 48, 64, "a.png")
    second = upload_png(owner, project, 20, 30, "b.png")
    saved: dict[int, tuple[int, str, np.ndarray]] = {}
    for image_id, (height, width) in ((first, (48, 64)), (second, (20, 30))):
        for label in ("nucleus", "cell", "nucleus"):
            mask = rng.random((height, width)) > 0.7  # ragged masks, many runs
            saved[save(member, image_id, label, mask)] = (image_id, label, mask)
    save(member, first, "cell", np.ones((48, 64), bool), state="proposed")

    response = export(member, project)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert (
        response["Content-Disposition"] == f'attachment; filename="nuclei-{project.pk}-coco.json"'
    )
    path = tmp_path / "export.json"
    path.write_bytes(response.content)
    coco = COCO(str(path))

    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"nucleus", "cell"}
    assert sorted(coco.getImgIds()) == sorted([first, second])
    assert coco.loadImgs(second)[0] == {
        "id": second,
        "file_name": "b.png",
        "width": 30,
        "height": 20,
    }
    assert sorted(coco.getAnnIds()) == sorted(saved)  # the proposed one is left out
    for ann_id, (image_id, label, mask) in saved.items():
        ann = coco.loadAnns(ann_id)[0]
        assert ann["image_id"] == image_id and ann["iscrowd"] == 0
        assert coco.loadCats(ann["category_id"])[0]["name"] == label
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
        assert ann["area"] == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_export_of_a_real_image_round_trips_its_ground_truth(
    project: Project, owner: User, tmp_path: Path
) -> None:
    import tifffile

    path = shared_data("nuclei_dsb2018/image.tif")
    with path.open("rb") as handle:
        response = client_for(owner).post(f"/api/projects/{project.pk}/images/", {"file": handle})
    image_id = response.json()["images"][0]["id"]
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    ids = [i for i in np.unique(labels) if i][:10]
    for i in ids:
        save(owner, image_id, "nucleus", labels == i)
    path = tmp_path / "export.json"
    path.write_bytes(export(owner, project).content)
    coco = COCO(str(path))
    masks = sorted(coco.annToMask(a).astype(bool).sum() for a in coco.loadAnns(coco.getAnnIds()))
    assert masks == sorted(int((labels == i).sum()) for i in ids)
    union = np.zeros(labels.shape, bool)
    for ann in coco.loadAnns(coco.getAnnIds()):
        union |= coco.annToMask(ann).astype(bool)
    np.testing.assert_array_equal(union, np.isin(labels, ids))


def test_export_of_an_empty_project(project: Project, owner: User) -> None:
    body = export(owner, project).json()
    assert set(body) >= {"info", "images", "categories", "annotations"}
    assert body["images"] == [] and body["annotations"] == []
    assert [c["name"] for c in body["categories"]] == ["nucleus", "cell"]


def test_export_defaults_to_coco(project: Project, owner: User) -> None:
    response = client_for(owner).get(f"/api/projects/{project.pk}/export/")
    assert response.status_code == 200
    assert "categories" in json.loads(response.content)


@pytest.mark.parametrize("fmt", ["yolo", "json", "api", ""])
def test_export_refuses_other_formats(project: Project, owner: User, fmt: str) -> None:
    response = export(owner, project, fmt)
    assert response.status_code == 400
    assert response.json()["detail"] == f"Unknown export format {fmt!r}; available: coco."


def test_export_is_hidden_from_outsider(project: Project, outsider: User) -> None:
    assert export(outsider, project).status_code == 404
    assert export(outsider, project, "yolo").status_code == 404
