"""Exports and splits over the REST API: start, follow, download; bad
requests refused with the reason; splits decided once, stable as images
are added, a stack's planes together, changed by fractions, seed or hand."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.contrib.auth.models import User

from backend.datasets.models import Export, ImageSplit
from backend.datasets.run import export_run
from backend.datasets.splits import split_for
from backend.images.models import Image
from backend.projects.models import Project
from tests.backend.datasets.conftest import Dataset, upload
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_an_export_is_started_followed_and_downloaded(dataset: Dataset, member: User) -> None:
    client = client_for(member)
    url = f"/api/projects/{dataset.project.pk}/exports/"
    started = client.post(url, {"format": "labels", "images": True}, format="json")
    assert started.status_code == 202, started.json()
    job = started.json()
    assert (job["status"], job["progress"], job["download"]) == ("pending", 0.0, None)
    early = client.get(f"/api/exports/{job['id']}/download/")
    assert early.status_code == 409 and "pending" in early.json()["detail"]
    export_run(export_id=job["id"])  # what the worker's task runs
    done = client.get(f"/api/exports/{job['id']}/").json()
    assert (done["status"], done["progress"], done["done_images"]) == ("done", 1.0, 2)
    response = client.get(done["download"])
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-labels.zip"')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "ro-crate-metadata.json" in archive.namelist()
    assert sum(n.startswith("images/") for n in archive.namelist()) == 2
    listed = client.get(url).json()
    assert [e["id"] for e in listed] == [job["id"]]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"format": "pascal"}, "format must be one of coco, labels, cellpose, stardist"),
        ({"format": "coco", "split": "holdout"}, "split must be one of all, train, val, test"),
        ({"format": "labels", "polygons": True}, "polygons are an option of the coco format"),
        ({"format": "coco", "images": "yes"}, "images and polygons must be true or false"),
    ],
)
def test_a_bad_export_request_says_what_was_wrong(
    dataset: Dataset, owner: User, body: dict[str, object], says: str
) -> None:
    response = client_for(owner).post(
        f"/api/projects/{dataset.project.pk}/exports/", body, format="json"
    )
    assert response.status_code == 400 and says in response.json()["detail"]
    assert not Export.objects.exists()


def test_someone_elses_export_does_not_exist_for_an_annotator(
    dataset: Dataset, owner: User
) -> None:
    export = Export.objects.create(project=dataset.project, created_by=owner, format="coco")
    export_run(export_id=export.pk)
    annotator = User.objects.create_user("ines", password="pw-123456789")
    dataset.project.memberships.create(user=annotator, role="annotator")
    for url in (f"/api/exports/{export.pk}/", f"/api/exports/{export.pk}/download/"):
        assert client_for(annotator).get(url).status_code == 404
    assert client_for(annotator).get(f"/api/projects/{dataset.project.pk}/exports/").json() == []


def test_a_failed_export_says_why_and_leaves_no_zip(dataset: Dataset, owner: User) -> None:
    Image.objects.filter(pk=dataset.cells.pk).update(planes_path="gone/planes.npy")
    export = Export.objects.create(
        project=dataset.project, created_by=owner, format="cellpose", options={"split": "all"}
    )
    export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == "failed" and "FileNotFoundError" in export.error
    assert not export.path.exists() and not export.path.with_suffix(".part").exists()


def test_splits_are_decided_once_and_stay_as_images_come(project: Project, owner: User) -> None:
    client = client_for(owner)
    url = f"/api/projects/{project.pk}/splits/"
    first = [upload(project, owner, "nuclei_dsb2018/image.tif", f"n{k}.tif") for k in range(6)]
    summary = client.get(url).json()
    assert summary["fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert sum(summary["counts"].values()) == 6
    before = dict(ImageSplit.objects.values_list("image_id", "split"))
    for image in first:  # the hash of the seed and the image decides
        key = f"image:{image.pk}"
        assert before[image.pk] == split_for(key=key, seed=0, fractions=(0.8, 0.1, 0.1))
    # A stack: every plane in one split.
    upload(project, owner, "multidim/tyx_timeseries_uint16.tiff", "timelapse.tiff")
    assert sum(client.get(url).json()["counts"].values()) == 6 + 5
    after = dict(ImageSplit.objects.values_list("image_id", "split"))
    assert {k: after[k] for k in before} == before  # nobody moved
    planes = Image.objects.filter(project=project, stack__isnull=False)
    assert len({after[p.pk] for p in planes}) == 1
    # New fractions decide again, but an image set by hand stays where it was put.
    response = client.patch(url, {"images": {str(first[0].pk): "test"}}, format="json")
    assert response.json()["by_hand"] == 1
    response = client.patch(url, {"fractions": {"train": 0, "val": 1, "test": 0}}, format="json")
    assert response.status_code == 200
    assert response.json()["counts"] == {"train": 0, "val": 10, "test": 1}
    # A plane set by hand takes its stack with it.
    plane = planes.first()
    assert plane is not None
    client.patch(url, {"images": {str(plane.pk): "train"}}, format="json")
    assert set(ImageSplit.objects.filter(image__in=planes).values_list("split", flat=True)) == {
        "train"
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"fractions": {"train": 0.5, "val": 0.2, "test": 0.2}}, "add up to 1, not 0.9"),
        ({"fractions": {"train": 1}}, "must give train, val and test"),
        ({"fractions": {"train": -0.5, "val": 1.5, "test": 0}}, "at least 0"),
        ({"seed": "x"}, "seed must be a whole number"),
        ({"images": {"999999": "train"}}, "Image 999999 is not in this project"),
        ({"images": {"1": "holdout"}}, "must be one of train, val, test"),
    ],
)
def test_bad_splits_are_refused_and_change_nothing(
    dataset: Dataset, owner: User, body: dict[str, object], says: str
) -> None:
    url = f"/api/projects/{dataset.project.pk}/splits/"
    before = client_for(owner).get(url).json()
    response = client_for(owner).patch(url, body, format="json")
    assert response.status_code == 400 and says in response.json()["detail"], response.json()
    assert client_for(owner).get(url).json() == before


def test_the_worker_task_writes_the_export(dataset: Dataset, owner: User) -> None:
    from backend.datasets.tasks import run_export

    export = Export.objects.create(
        project=dataset.project, created_by=owner, format="stardist", options={"split": "all"}
    )
    run_export.apply(args=[export.pk]).get()  # Celery's own call of the registered task
    export.refresh_from_db()
    assert export.status == "done" and zipfile.is_zipfile(export.path)
