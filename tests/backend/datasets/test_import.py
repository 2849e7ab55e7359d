"""Imports: every export format round-trips into a new project (the same
images uploaded there) with identical masks, labels and splits; a dry run
reports and stores nothing; bad input is refused naming the file and the
reason, and nothing is half-imported."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from typing import Any

import numpy as np
import pytest
import tifffile
from django.contrib.auth.models import User

from backend.annotations.models import Instance
from backend.datasets.models import ImageSplit
from backend.images.models import Image
from backend.projects.models import Label, Membership, Project
from tests.backend.datasets.conftest import Dataset, exported, upload
from tests.conftest import client_for
from worker import rle

pytestmark = pytest.mark.django_db


def twin(dataset: Dataset, owner: User) -> Project:
    """A new project with the same images (uploaded again) and one label."""
    project = Project.objects.create(name="Twin", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Label.objects.create(project=project, name="nucleus", order=0)
    upload(project, owner, "nuclei_dsb2018/image.tif", "nuclei.tif")
    upload(project, owner, "multichannel_16bit/bbbc022_3ch.tif", "bbbc022.tif")
    return project


def contents(project: Project) -> dict[str, Counter[tuple[bytes, str]]]:
    """Each image (by name) as the multiset of its curated masks with their labels."""
    found: dict[str, Counter[tuple[bytes, str]]] = {}
    for image in Image.objects.filter(project=project):
        found[image.name] = Counter(
            (np.packbits(rle.decode(i.rle)).tobytes(), i.label.name)
            for i in Instance.objects.filter(image=image, assignment=None).select_related("label")
        )
    return found


def splits(project: Project) -> dict[str, str]:
    rows = ImageSplit.objects.filter(image__project=project)
    return dict(rows.values_list("image__name", "split"))


def post_import(user: User, project: Project, data: bytes, name: str, **fields: Any) -> Any:
    handle = io.BytesIO(data)
    handle.name = name
    body = {"file": handle, **{k: str(v).lower() if isinstance(v, bool) else v
                               for k, v in fields.items()}}  # fmt: skip
    return client_for(user).post(f"/api/projects/{project.pk}/imports/", body)


def zip_bytes(archive: zipfile.ZipFile) -> bytes:
    assert archive.filename is not None
    with open(archive.filename, "rb") as handle:
        return handle.read()


@pytest.mark.parametrize(
    ("fmt", "read_as", "images"),
    [("coco", "coco", False), ("coco", "coco", True), ("labels", "labels", True),
     ("cellpose", "labels", True), ("stardist", "labels", True), ("ome-zarr", "ome-zarr", True),
     ("yolo", "yolo", True)],
)  # fmt: skip
def test_every_format_comes_back_identical(
    dataset: Dataset, owner: User, fmt: str, read_as: str, images: bool
) -> None:
    ImageSplit.objects.update_or_create(image=dataset.nuclei, defaults={"split": "test"})
    ImageSplit.objects.update_or_create(image=dataset.cells, defaults={"split": "val"})
    data = zip_bytes(exported(dataset.project, owner, fmt, images=images))
    target = twin(dataset, owner)
    response = post_import(owner, target, data, f"export-{fmt}.zip", format=read_as)
    assert response.status_code == 201, response.json()
    report = response.json()
    assert report["refused"] == [] and report["new_labels"] == ["cell"]
    assert report["imported"] == report["instances"] == 125 + 4
    assert contents(target) == contents(dataset.project)
    assert splits(target) == splits(dataset.project) == {"nuclei.tif": "test", "bbbc022.tif": "val"}
    made = Instance.objects.filter(image__project=target)
    assert set(made.values_list("origin", "author__username", "state")) == {
        ("imported", owner.username, "accepted")
    }


def test_a_dry_run_reports_and_stores_nothing(dataset: Dataset, owner: User) -> None:
    data = zip_bytes(exported(dataset.project, owner, "cellpose"))
    target = twin(dataset, owner)
    response = post_import(owner, target, data, "cellpose.zip", format="labels", dry_run=True)
    assert response.status_code == 200, response.json()
    report = response.json()
    assert report["dry_run"] is True and report["imported"] == 0
    by_name = {f["image_name"]: f for f in report["files"]}
    assert by_name["nuclei.tif"]["instances"] == 125 and by_name["bbbc022.tif"]["instances"] == 4
    assert by_name["nuclei.tif"]["file"].endswith("nuclei_masks.tif")
    assert report["new_labels"] == ["cell"]
    assert any(path.endswith("/nuclei.tif") for path in report["skipped"])  # the image itself
    assert not Instance.objects.filter(image__project=target).exists()
    assert not Label.objects.filter(project=target, name="cell").exists()


def test_masks_come_in_as_proposals_to_correct(dataset: Dataset, owner: User) -> None:
    labels = tifffile.imread(io.BytesIO(_label_tiff(dataset.truth[dataset.nuclei.pk])))
    target = twin(dataset, owner)
    response = post_import(owner, target, _label_tiff(labels), "nuclei_masks.tif",
                           format="labels", **{"as": "proposed"})  # fmt: skip
    assert response.status_code == 201, response.json()
    made = Instance.objects.filter(image__project=target)
    assert made.count() == 125 and set(made.values_list("state", flat=True)) == {"proposed"}
    assert set(made.values_list("label__name", flat=True)) == {"nucleus"}  # no classes: default


def _label_tiff(labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels)
    return buffer.getvalue()


def coco_file(images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> bytes:
    document = {"images": images, "annotations": annotations,
                "categories": [{"id": 1, "name": "nucleus"}]}  # fmt: skip
    return json.dumps(document).encode()


NUCLEI = {"id": 1, "file_name": "nuclei.tif", "height": 512, "width": 512}
SQUARE = [10, 10, 40, 10, 40, 40, 10, 40]


@pytest.mark.parametrize(
    ("data", "name", "says"),
    [
        (coco_file([{**NUCLEI, "file_name": "elsewhere.tif"}], []), "a.json",
         "a.json: no image named 'elsewhere.tif' in this project"),
        (coco_file([{**NUCLEI, "height": 256}], [
            {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [SQUARE]}]), "b.json",
         "its masks are 512 x 256, the image 'nuclei.tif' is 512 x 512"),
        (coco_file([NUCLEI], [{"id": 7, "image_id": 1, "category_id": 1,
                               "segmentation": {"size": [512, 512], "counts": [5, 300000]}}]),
         "c.json", "annotation 7: the RLE's runs must be whole numbers covering 262144 pixels"),
        (coco_file([NUCLEI], [{"id": 8, "image_id": 1, "category_id": 1,
                               "segmentation": [[10, 10, 600, 10, 600, 40]]}]),
         "d.json", "annotation 8: a polygon lies outside the 512 x 512 image"),
        (coco_file([NUCLEI], [{"id": 9, "image_id": 1, "category_id": 4,
                               "segmentation": [SQUARE]}]),
         "e.json", "annotation 9: category_id 4 is not in categories"),
        (b"not json at all", "f.json", "f.json: not JSON"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_file_and_nothing_is_imported(
    dataset: Dataset, owner: User, data: bytes, name: str, says: str
) -> None:
    target = twin(dataset, owner)
    good = coco_file(
        [NUCLEI], [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [SQUARE]}]
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("good.json", good)  # would be imported alone
        out.writestr(name, data)
    response = post_import(owner, target, archive.getvalue(), "mixed.zip", format="coco")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert says in body["detail"] and body["detail"].startswith("Nothing was imported")
    assert next(r["file"] for r in body["refused"]).startswith(name)
    assert not Instance.objects.filter(image__project=target).exists()


def test_an_annotator_cannot_bring_in_new_labels(dataset: Dataset, owner: User) -> None:
    data = zip_bytes(exported(dataset.project, owner, "coco"))
    target = twin(dataset, owner)
    Project.objects.filter(pk=target.pk).update(overlap=1, review=False)
    reviewer = User.objects.create_user("rita", password="pw-123456789")
    Membership.objects.create(project=target, user=reviewer, role=Membership.Role.REVIEWER)
    response = post_import(reviewer, target, data, "coco.zip", format="coco")
    assert response.status_code == 400
    assert (
        "labels cell are not in this project: only owners add labels" in response.json()["detail"]
    )


@pytest.mark.parametrize(
    ("fields", "says"),
    [({"format": "voc"}, "format must be one of coco, labels"),
     ({"format": "coco", "as": "draft"}, 'as must be "curated" or "proposed"'),
     ({"format": "coco", "dry_run": "maybe"}, "dry_run must be true or false")],
)  # fmt: skip
def test_a_bad_import_request_says_what_was_wrong(
    dataset: Dataset, owner: User, fields: dict[str, str], says: str
) -> None:
    response = post_import(owner, dataset.project, b"{}", "x.json", **fields)
    assert response.status_code == 400 and says in response.json()["detail"]


@pytest.mark.parametrize(
    ("line", "says"),
    [("0 0.1 0.1 0.5 0.1", "line 1: an outline is at least 3 x, y pairs"),
     ("3 0.1 0.1 0.5 0.1 0.5 0.5", "line 1: class 3 is not in data.yaml's names"),
     ("0 0.1 0.1 1.5 0.1 0.5 0.5", "line 1: coordinates are normalised, from 0 to 1")],
)  # fmt: skip
def test_a_bad_yolo_line_is_refused(dataset: Dataset, owner: User, line: str, says: str) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("data.yaml", "names: [nucleus]\n")
        out.writestr("labels/train/nuclei.txt", line + "\n")
    target = twin(dataset, owner)
    response = post_import(owner, target, archive.getvalue(), "yolo.zip", format="yolo")
    assert response.status_code == 400 and says in response.json()["detail"], response.json()


def test_qupath_geojson_brings_polygons_with_holes_and_classifications(
    dataset: Dataset, owner: User
) -> None:
    square = [[10, 10], [50, 10], [50, 50], [10, 50], [10, 10]]
    hole = [[20, 20], [30, 20], [30, 30], [20, 30], [20, 20]]
    features = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square, hole]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[100, 100], [110, 100], [110, 110], [100, 110]]],
            [[[200, 200], [204, 200], [204, 204], [200, 204]]]]},
         "properties": {"objectType": "detection"}},
    ]}  # fmt: skip
    target = twin(dataset, owner)
    response = post_import(owner, target, json.dumps(features).encode(), "nuclei.geojson",
                           format="qupath")  # fmt: skip
    assert response.status_code == 201, response.json()
    assert response.json()["new_labels"] == ["Tumor"]
    tumour, detection = Instance.objects.filter(image__project=target).order_by("id")
    mask = rle.decode(tumour.rle)
    assert tumour.label.name == "Tumor" and detection.label.name == "nucleus"  # the default
    assert tumour.area == 40 * 40 - 10 * 10 and not mask[25, 25] and mask[15, 15]
    assert detection.area == 10 * 10 + 4 * 4  # both parts, one instance
    assert tumour.bbox == [10, 10, 40, 40]


def test_a_qupath_point_or_a_polygon_off_the_image_is_refused(
    dataset: Dataset, owner: User
) -> None:
    target = twin(dataset, owner)
    point = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}}]
    response = post_import(owner, target, json.dumps(point).encode(), "nuclei.geojson",
                           format="qupath")  # fmt: skip
    assert response.status_code == 400 and "a Point is not an area" in response.json()["detail"]
    off = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[500, 500], [530, 500], [530, 530], [500, 500]]]}}]  # fmt: skip
    response = post_import(owner, target, json.dumps(off).encode(), "nuclei.geojson",
                           format="qupath")  # fmt: skip
    assert "a polygon lies outside the 512 x 512 image" in response.json()["detail"]
    assert not Instance.objects.filter(image__project=target).exists()


def test_an_imagej_roi_set_becomes_masks_of_the_image_it_names(
    dataset: Dataset, owner: User, tmp_path: Any
) -> None:
    from roifile import ROI_TYPE, ImagejRoi

    path = tmp_path / "nuclei_RoiSet.zip"
    ImagejRoi.frompoints([[10, 10], [40, 10], [40, 30], [10, 30]]).tofile(path)
    ImagejRoi(roitype=ROI_TYPE.RECT, left=100, top=120, right=110, bottom=125).tofile(path)
    ImagejRoi(roitype=ROI_TYPE.OVAL, left=200, top=200, right=240, bottom=220).tofile(path)
    target = twin(dataset, owner)
    response = post_import(owner, target, path.read_bytes(), "nuclei_RoiSet.zip",
                           format="imagej-roi", dry_run=True)  # fmt: skip
    assert response.status_code == 200, response.json()
    assert [(f["image_name"], f["instances"]) for f in response.json()["files"]] == [
        ("nuclei.tif", 3)
    ]
    response = post_import(owner, target, path.read_bytes(), "nuclei_RoiSet.zip",
                           format="imagej-roi")  # fmt: skip
    assert response.status_code == 201, response.json()
    polygon, rect, oval = Instance.objects.filter(image__project=target).order_by("id")
    assert polygon.area == 30 * 20 and polygon.bbox == [10, 10, 30, 20]
    assert rect.area == 10 * 5 and rect.bbox == [100, 120, 10, 5]
    assert abs(oval.area - np.pi * 20 * 10) < 0.1 * np.pi * 20 * 10  # an ellipse, about
    line = tmp_path / "line.roi"
    ImagejRoi(roitype=ROI_TYPE.LINE, x1=1, y1=1, x2=20, y2=20).tofile(line)
    response = post_import(owner, target, line.read_bytes(), "nuclei.roi", format="imagej-roi")
    assert response.status_code == 400 and "a line ROI is not an area" in response.json()["detail"]


def test_cellpose_seg_npy_is_read_without_running_its_pickle(dataset: Dataset, owner: User) -> None:
    truth = dataset.truth[dataset.nuclei.pk]
    seg = {"masks": truth, "outlines": truth > 0, "filename": "nuclei.tif",
           "est_diam": np.float64(17.0), "chan_choose": [0, 0], "ismanual": np.ones(125, bool),
           "flows": [np.zeros((3, 8, 8), np.uint8)]}  # fmt: skip
    buffer = io.BytesIO()
    np.save(buffer, np.array(seg, dtype=object), allow_pickle=True)  # as Cellpose's GUI does
    target = twin(dataset, owner)
    response = post_import(
        owner, target, buffer.getvalue(), "nuclei_seg.npy", format="cellpose-seg"
    )
    assert response.status_code == 201, response.json()
    made = Instance.objects.filter(image__project=target)
    assert made.count() == 125
    painted = np.zeros(truth.shape, dtype=bool)
    for instance in made:
        painted |= rle.decode(instance.rle)
    assert np.array_equal(painted, truth > 0)


class Payload:
    """What a malicious _seg.npy would carry: a call on unpickling."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (print, ("this must never run",))


def test_a_seg_npy_with_anything_but_arrays_is_refused(dataset: Dataset, owner: User) -> None:
    buffer = io.BytesIO()
    payload = {"masks": dataset.truth[dataset.nuclei.pk], "x": Payload()}
    np.save(buffer, np.array(payload, dtype=object), allow_pickle=True)
    target = twin(dataset, owner)
    response = post_import(
        owner, target, buffer.getvalue(), "nuclei_seg.npy", format="cellpose-seg"
    )
    assert response.status_code == 400
    assert "builtins.print is not allowed in a _seg.npy" in response.json()["detail"]
