"""Multi-page TIFF and OME-TIFF stacks over the REST API: each (t, z) plane
is an image of its own, linked to its ImageStack.

Real files come from ../shared/data (see its README).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from django.conf import settings
from django.contrib.auth.models import User
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance
from backend.images.models import Image, ImageStack
from backend.projects.models import Project
from backend.segmentation.models import Embedding
from tests.conftest import client_for, shared_data

pytestmark = pytest.mark.django_db

TIMELAPSE = "nuclei_timelapse/images.tif"


def upload(user: User, project: Project, *files: io.IOBase):
    return client_for(user).post(f"/api/projects/{project.pk}/images/", {"file": list(files)})


def upload_shared(user: User, project: Project, relative: str):
    with shared_data(relative).open("rb") as handle:
        return upload(user, project, handle)


def tiff_file(array: np.ndarray, name: str, **kwargs) -> io.BytesIO:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    buffer.seek(0)
    buffer.name = name
    return buffer


def stored_planes(image: Image) -> np.ndarray:
    return np.load(Path(settings.MEDIA_ROOT) / image.planes_path)


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def rle_of(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


def test_the_timelapse_becomes_a_stack_of_six_plane_images(project: Project, owner: User) -> None:
    response = upload_shared(owner, project, TIMELAPSE)
    assert response.status_code == 201, response.json()
    bodies = response.json()["images"]
    stack = ImageStack.objects.get()
    assert (stack.name, stack.axes, stack.shape) == ("images.tif", "TZ", {"T": 6, "Z": 1})
    assert "Q shown as t" in stack.note
    assert [(b["stack"]["t"], b["stack"]["z"]) for b in bodies] == [(t, 0) for t in range(6)]
    assert [b["name"] for b in bodies] == [f"images.tif [t={t} z=0]" for t in range(6)]
    assert all(b["stack"]["id"] == stack.pk for b in bodies)
    assert all((b["width"], b["height"], b["channels"]) == (200, 200, 1) for b in bodies)


def test_each_plane_keeps_the_values_of_its_page(project: Project, owner: User) -> None:
    upload_shared(owner, project, TIMELAPSE)
    expected = tifffile.imread(shared_data(TIMELAPSE))  # (6, 200, 200) uint16
    planes = Image.objects.filter(stack__isnull=False).order_by("t")
    assert planes.count() == 6
    for image in planes:
        stored = stored_planes(image)
        assert stored.dtype == np.uint16
        np.testing.assert_array_equal(stored, expected[image.t][np.newaxis])
    assert len({image.planes_path for image in planes}) == 6
    assert len({image.display_path for image in planes}) == 6


def test_image_detail_lists_the_planes_of_its_stack(
    project: Project, member: User, owner: User
) -> None:
    ids = [b["id"] for b in upload_shared(owner, project, TIMELAPSE).json()["images"]]
    body = client_for(member).get(f"/api/images/{ids[3]}/").json()
    stack = ImageStack.objects.get()
    assert body["stack"] == {
        "id": stack.pk,
        "name": "images.tif",
        "axes": "TZ",
        "shape": {"T": 6, "Z": 1},
        "plane_count": 6,
        "t": 3,
        "z": 0,
        "planes": [[t, 0, ids[t]] for t in range(6)],
    }


def test_a_plain_image_has_no_stack(project: Project, owner: User) -> None:
    response = upload_shared(owner, project, "nuclei_dsb2018/image.tif")
    [body] = response.json()["images"]
    assert body["stack"] is None
    assert client_for(owner).get(f"/api/images/{body['id']}/").json()["stack"] is None
    assert not ImageStack.objects.exists()


def test_the_stack_endpoint_lists_planes_t_major(project: Project, member: User) -> None:
    bodies = upload_shared(member, project, "multidim/tzcyx_5d_uint16.tiff").json()["images"]
    stack = ImageStack.objects.get()
    response = client_for(member).get(f"/api/stacks/{stack.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["shape"], body["plane_count"], body["project"]) == (
        {"T": 2, "Z": 3},
        6,
        project.pk,
    )
    assert body["planes"] == [[b["stack"]["t"], b["stack"]["z"], b["id"]] for b in bodies]
    assert [p[:2] for p in body["planes"]] == [[t, z] for t in range(2) for z in range(3)]


def test_a_hyperstack_keeps_both_channels_in_every_plane(project: Project, owner: User) -> None:
    upload_shared(owner, project, "multidim/tzcyx_5d_uint16.tiff")
    expected = tifffile.imread(shared_data("multidim/tzcyx_5d_uint16.tiff"))  # TZCYX
    for image in Image.objects.all():
        assert image.channels == 2
        np.testing.assert_array_equal(stored_planes(image), expected[image.t, image.z])


def test_a_z_stack_with_two_channels_keeps_them_per_plane(project: Project, owner: User) -> None:
    bodies = upload_shared(owner, project, "multidim/zcyx_zstack_2ch.tiff").json()["images"]
    expected = tifffile.imread(shared_data("multidim/zcyx_zstack_2ch.tiff"))  # ZCYX (25, 2)
    assert len(bodies) == 25
    assert ImageStack.objects.get().shape == {"T": 1, "Z": 25}
    for image in Image.objects.all():
        assert (image.t, image.channels, image.dtype) == (0, 2, "uint8")
        np.testing.assert_array_equal(stored_planes(image), expected[image.z])


def test_a_named_time_series_reads_every_frame(project: Project, owner: User) -> None:
    upload_shared(owner, project, "multidim/tyx_timeseries_uint16.tiff")
    expected = tifffile.imread(shared_data("multidim/tyx_timeseries_uint16.tiff"))
    stack = ImageStack.objects.get()
    assert stack.shape == {"T": 5, "Z": 1} and "shown as t" not in stack.note
    for image in Image.objects.all():
        np.testing.assert_array_equal(stored_planes(image)[0], expected[image.t])


def test_each_series_of_an_ome_tiff_is_an_image(project: Project, owner: User) -> None:
    path = shared_data("ome_tiff/multiseries_6x_CYX.ome.tiff")
    bodies = upload_shared(owner, project, "ome_tiff/multiseries_6x_CYX.ome.tiff").json()
    names = [b["name"] for b in bodies["images"]]
    assert names == [f"multiseries_6x_CYX.ome.tiff [series {i}]" for i in range(1, 7)]
    assert all(b["stack"] is None and b["channels"] == 4 for b in bodies["images"])
    for i, body in enumerate(bodies["images"]):
        image = Image.objects.get(pk=body["id"])
        np.testing.assert_array_equal(stored_planes(image), tifffile.imread(path, series=i))


def test_instances_belong_to_one_plane(project: Project, owner: User, member: User) -> None:
    ids = [b["id"] for b in upload_shared(owner, project, TIMELAPSE).json()["images"]]
    mask = np.zeros((200, 200), bool)
    mask[50:60, 70:90] = True
    response = client_for(member).post(
        f"/api/images/{ids[2]}/instances/", {"label": "nucleus", "rle": rle_of(mask)}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert list(Instance.objects.values_list("image_id", flat=True)) == [ids[2]]
    assert len(client_for(member).get(f"/api/images/{ids[2]}/instances/").json()) == 1
    assert client_for(member).get(f"/api/images/{ids[0]}/instances/").json() == []


def test_coco_export_names_each_plane(project: Project, owner: User) -> None:
    ids = [b["id"] for b in upload_shared(owner, project, TIMELAPSE).json()["images"]]
    coco = client_for(owner).get(f"/api/projects/{project.pk}/export/?format=coco").json()
    assert [(i["id"], i["file_name"]) for i in coco["images"]] == [
        (ids[t], f"images.tif [t={t} z=0]") for t in range(6)
    ]


def test_a_short_stack_embeds_every_plane_at_upload(project: Project, owner: User) -> None:
    ids = [b["id"] for b in upload_shared(owner, project, TIMELAPSE).json()["images"]]
    assert sorted(Embedding.objects.values_list("image_id", flat=True)) == sorted(ids)


def test_a_long_stack_embeds_only_its_first_plane_at_upload(
    project: Project, owner: User, settings
) -> None:
    settings.STACK_EAGER_EMBEDDINGS = 4
    bodies = upload_shared(owner, project, TIMELAPSE).json()["images"]
    assert list(Embedding.objects.values_list("image_id", flat=True)) == [bodies[0]["id"]]


@pytest.mark.django_db(transaction=True)
def test_opening_a_later_plane_of_a_long_stack_schedules_its_embedding(
    project: Project, owner: User, member: User, settings
) -> None:
    import asyncio

    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.db import connections
    from django.test import Client

    from backend.asgi import application

    settings.STACK_EAGER_EMBEDDINGS = 4
    ids = [b["id"] for b in upload_shared(owner, project, TIMELAPSE).json()["images"]]
    assert not Embedding.objects.filter(image_id=ids[3]).exists()
    client = Client()
    client.force_login(member)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)]

    async def open_plane() -> dict:
        socket = WebsocketCommunicator(application, f"/ws/images/{ids[3]}/", headers=headers)
        connected, _ = await socket.connect(timeout=10)
        assert connected
        status = await socket.receive_json_from(timeout=10)
        await socket.disconnect()
        # The consumer's database thread keeps a connection that would block
        # dropping the test database: close it from that thread.
        await database_sync_to_async(connections.close_all)()
        return status

    status = asyncio.run(open_plane())
    assert status["type"] == "status"
    assert Embedding.objects.filter(image_id=ids[3]).exists()
    assert not Embedding.objects.filter(image_id__in=ids[4:]).exists()


def test_the_image_list_shows_planes_without_their_plane_list(
    project: Project, owner: User
) -> None:
    upload_shared(owner, project, TIMELAPSE)
    listed = client_for(owner).get(f"/api/projects/{project.pk}/images/").json()["results"]
    assert len(listed) == 6
    assert all(i["stack"]["plane_count"] == 6 and "planes" not in i["stack"] for i in listed)


def test_it_refuses_more_planes_than_the_limit_and_saves_nothing(
    project: Project, owner: User, settings
) -> None:
    settings.MAX_STACK_PLANES = 5
    good = tiff_file(np.zeros((8, 8), np.uint8), "good.tif")
    with shared_data(TIMELAPSE).open("rb") as handle:
        response = upload(owner, project, good, handle)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "images.tif: the file holds 6 planes, more than the limit of 5"
    )
    assert not Image.objects.exists() and not ImageStack.objects.exists()
    assert not Embedding.objects.exists() and media_files() == []


def test_it_refuses_more_pixels_over_all_planes_than_the_limit(
    project: Project, owner: User, settings
) -> None:
    settings.MAX_STACK_PIXELS = 5 * 200 * 200
    response = upload_shared(owner, project, TIMELAPSE)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "images.tif: the file's 6 planes hold 240,000 pixels, more than the limit of 200,000 pixels"
    )
    assert not Image.objects.exists() and media_files() == []
    settings.MAX_STACK_PIXELS = 6 * 200 * 200
    assert upload_shared(owner, project, TIMELAPSE).status_code == 201


def test_a_damaged_page_saves_nothing(project: Project, owner: User) -> None:
    data = bytearray(shared_data(TIMELAPSE).read_bytes())
    with tifffile.TiffFile(shared_data(TIMELAPSE)) as tif:
        page = tif.pages[4]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    cut = io.BytesIO(bytes(data[: offset + count // 2]))
    cut.name = "cut.tif"
    response = upload(owner, project, cut)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("cut.tif: ")
    assert not Image.objects.exists() and not ImageStack.objects.exists()
    assert media_files() == []


def test_outsider_gets_404_on_the_stack(project: Project, owner: User, outsider: User) -> None:
    upload_shared(owner, project, TIMELAPSE)
    stack = ImageStack.objects.get()
    assert client_for(outsider).get(f"/api/stacks/{stack.pk}/").status_code == 404
    assert client_for(outsider).delete(f"/api/stacks/{stack.pk}/").status_code == 404
    assert client_for(None).get(f"/api/stacks/{stack.pk}/").status_code in (401, 403)
    assert ImageStack.objects.filter(pk=stack.pk).exists()


def test_a_plane_is_deleted_only_with_its_stack(project: Project, owner: User) -> None:
    ids = [b["id"] for b in upload_shared(owner, project, TIMELAPSE).json()["images"]]
    response = client_for(owner).delete(f"/api/images/{ids[1]}/")
    assert response.status_code == 400
    assert "delete the whole stack" in response.json()["detail"]
    assert Image.objects.count() == 6


def test_owner_deletes_a_stack_with_its_planes_and_files(
    project: Project, owner: User, member: User, django_capture_on_commit_callbacks
) -> None:
    upload_shared(owner, project, TIMELAPSE)
    kept = tiff_file(np.zeros((8, 8), np.uint8), "kept.tif")
    upload(owner, project, kept)
    stack = ImageStack.objects.get()
    assert client_for(member).delete(f"/api/stacks/{stack.pk}/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).delete(f"/api/stacks/{stack.pk}/")
    assert response.status_code == 204
    assert list(Image.objects.values_list("name", flat=True)) == ["kept.tif"]
    kept_folder = Path(settings.MEDIA_ROOT) / Path(Image.objects.get().planes_path).parent
    assert all(p.parent == kept_folder for p in media_files())


def test_a_synthetic_stack_of_unnamed_pages_reads_as_t(project: Project, owner: User) -> None:
    stack = np.random.default_rng(3).integers(0, 4000, (3, 2, 16, 12), dtype=np.uint16)
    upload(owner, project, tiff_file(stack, "movie.tif", metadata={"axes": "QCYX"}))
    assert ImageStack.objects.get().shape == {"T": 3, "Z": 1}
    for image in Image.objects.all():
        assert (image.width, image.height, image.channels) == (12, 16, 2)
        np.testing.assert_array_equal(stored_planes(image), stack[image.t])
