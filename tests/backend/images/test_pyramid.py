"""The tile pyramid over the REST API: levels, raw tiles, statistics, access."""

from __future__ import annotations

import gzip
import io
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from django.contrib.auth.models import User

from backend.images import pyramid as pyramid_module
from backend.images.models import Image
from backend.images.pyramid import halve, level_sizes, pyramid_ensure
from backend.images.storage import media_path
from backend.projects.models import Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

TILE = pyramid_module.TILE_SIZE


def tiff_file(planes: np.ndarray, name: str = "cells.tif") -> io.BytesIO:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, planes, photometric="minisblack", metadata={"axes": "CYX"})
    buffer.seek(0)
    buffer.name = name
    return buffer


def upload(user: User, project: Project, planes: np.ndarray) -> int:
    response = client_for(user).post(
        f"/api/projects/{project.pk}/images/", {"file": [tiff_file(planes)]}
    )
    assert response.status_code == 201, response.content
    return int(response.json()["images"][0]["id"])


def reference_level(planes: np.ndarray, level: int) -> np.ndarray:
    """Level `level` by the documented rule, written independently of the code under
    test: pad an odd edge by repeating it, mean of 2 x 2 blocks, round half up."""
    for _ in range(level):
        c, h, w = planes.shape
        padded = np.pad(planes, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
        blocks = padded.reshape(c, (h + 1) // 2, 2, (w + 1) // 2, 2).astype(np.float64)
        mean = blocks.mean(axis=(2, 4))
        planes = (np.floor(mean + 0.5) if planes.dtype.kind in "iu" else mean).astype(planes.dtype)
    return planes


def get_tile(user: User, image_id: int, level: int, tx: int, ty: int, *, gzip_ok: bool = False):
    headers = {"HTTP_ACCEPT_ENCODING": "gzip, deflate"} if gzip_ok else {}
    return client_for(user).get(f"/api/images/{image_id}/tiles/{level}/{tx}/{ty}.bin", **headers)


def tile_array(response) -> np.ndarray:
    body = response.content
    if response.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    shape = tuple(int(n) for n in response["X-Tile-Shape"].split(","))
    return np.frombuffer(body, dtype=np.dtype(response["X-Tile-Dtype"]).newbyteorder("<")).reshape(
        shape
    )


@pytest.fixture
def planes16() -> np.ndarray:
    """Two uint16 channels, 1100 x 700: three levels at 512-pixel tiles."""
    rng = np.random.default_rng(7)
    planes = rng.integers(0, 4096, (2, 700, 1100), dtype=np.uint16)
    planes[1, 100:300, 600:900] = 40000
    return planes


# --- the pure parts ---------------------------------------------------------


def test_levels_halve_down_to_one_tile() -> None:
    assert level_sizes(300, 200) == [(300, 200)]
    assert level_sizes(1100, 700) == [(1100, 700), (550, 350), (275, 175)]
    sizes = level_sizes(12000, 12000)
    assert sizes[-1] == (375, 375) and len(sizes) == 6


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_halving_is_the_rounded_mean_of_each_block(dtype: str) -> None:
    rng = np.random.default_rng(1)
    block = rng.integers(-100 if dtype == "int16" else 0, 250, (3, 7, 9)).astype(dtype)
    assert halve(block).dtype == block.dtype
    np.testing.assert_allclose(halve(block), reference_level(block, 1), rtol=1e-6)


def test_a_pyramid_is_built_once_however_many_ask(tmp_path: Path) -> None:
    planes = np.arange(2 * 1500 * 900, dtype=np.uint32).reshape(2, 900, 1500)
    np.save(tmp_path / "planes.npy", planes)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(pyramid_ensure(tmp_path / "planes.npy")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(r.sizes == results[0].sizes for r in results)
    assert sorted(p.name for p in (tmp_path / "pyramid").iterdir()) == [
        "level_1.npy", "level_2.npy", "meta.json",
    ]  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pyramid")]


# --- over the API -----------------------------------------------------------


def test_the_image_detail_describes_its_pyramid(
    project: Project, member: User, planes16: np.ndarray
) -> None:
    image_id = upload(member, project, planes16)
    body = client_for(member).get(f"/api/images/{image_id}/").json()
    pyramid = body["pyramid"]
    assert pyramid["tile_size"] == TILE and pyramid["dtype"] == "uint16"
    assert pyramid["levels"] == [
        {"width": 1100, "height": 700, "columns": 3, "rows": 2},
        {"width": 550, "height": 350, "columns": 2, "rows": 1},
        {"width": 275, "height": 175, "columns": 1, "rows": 1},
    ]
    assert pyramid["tile_url"] == f"/api/images/{image_id}/tiles/{{level}}/{{x}}/{{y}}.bin"
    assert pyramid["percentiles"] == [0.5, 99.5]
    for channel, stats in enumerate(pyramid["channels"]):
        values = planes16[channel]
        assert (stats["min"], stats["max"]) == (values.min(), values.max())
        low, high = np.percentile(values, [0.5, 99.5])
        assert stats["p_low"] == pytest.approx(low, abs=2)
        assert stats["p_high"] == pytest.approx(high, abs=2)
    assert body["model_mapping"] == [0, 1, None]


@pytest.mark.parametrize(("level", "tx", "ty"), [(0, 0, 0), (0, 2, 1), (1, 1, 0), (2, 0, 0)])
def test_tile_bytes_are_the_planes_at_that_level_and_place(
    project: Project, member: User, planes16: np.ndarray, level: int, tx: int, ty: int
) -> None:
    image_id = upload(member, project, planes16)
    response = get_tile(member, image_id, level, tx, ty)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in response
    expected = reference_level(planes16, level)[
        :, ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE
    ]
    assert response["X-Tile-Shape"] == ",".join(map(str, expected.shape))
    np.testing.assert_array_equal(tile_array(response), expected)


def test_tiles_come_gzipped_when_the_client_accepts_it(
    project: Project, member: User, planes16: np.ndarray
) -> None:
    image_id = upload(member, project, planes16)
    response = get_tile(member, image_id, 0, 1, 0, gzip_ok=True)
    assert response["Content-Encoding"] == "gzip"
    assert len(response.content) < planes16[:, :TILE, TILE : 2 * TILE].nbytes
    np.testing.assert_array_equal(tile_array(response), planes16[:, :TILE, TILE : 2 * TILE])


@pytest.mark.parametrize(
    ("planes", "dtype"),
    [
        (np.linspace(-1.5, 2.5, 3 * 40 * 30, dtype=np.float32).reshape(1, 40, 90), "float32"),
        (np.arange(3 * 20 * 30, dtype=np.uint8).reshape(3, 20, 30), "uint8"),
    ],
)
def test_tiles_keep_the_image_dtype(
    project: Project, member: User, planes: np.ndarray, dtype: str
) -> None:
    image_id = upload(member, project, planes)
    response = get_tile(member, image_id, 0, 0, 0)
    assert response["X-Tile-Dtype"] == dtype
    np.testing.assert_array_equal(tile_array(response), planes)


def test_it_hides_tiles_from_outsider(
    project: Project, member: User, outsider: User, planes16: np.ndarray
) -> None:
    image_id = upload(member, project, planes16)
    assert get_tile(outsider, image_id, 0, 0, 0).status_code == 404
    assert client_for(None).get(f"/api/images/{image_id}/tiles/0/0/0.bin").status_code in (401, 403)


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("3/0/0", 404, "No level 3: the pyramid has levels 0 to 2."),
        ("1/2/0", 404, "No tile (2, 0) at level 1: tiles go from (0, 0) to (1, 0)."),
        ("0/0/2", 404, "No tile (0, 2) at level 0: tiles go from (0, 0) to (2, 1)."),
        ("x/0/0", 400, "level must be a non-negative integer, got 'x'."),
        ("0/-1/0", 400, "x must be a non-negative integer, got '-1'."),
    ],
)
def test_it_refuses_tiles_outside_the_pyramid(
    project: Project, member: User, planes16: np.ndarray, path: str, status: int, detail: str
) -> None:
    image_id = upload(member, project, planes16)
    response = client_for(member).get(f"/api/images/{image_id}/tiles/{path}.bin")
    assert response.status_code == status
    assert response.json() == {"detail": detail}


def test_the_pyramid_lives_and_dies_with_the_image_folder(
    project: Project, owner: User, planes16: np.ndarray, django_capture_on_commit_callbacks
) -> None:
    image_id = upload(owner, project, planes16)
    get_tile(owner, image_id, 2, 0, 0)
    folder = media_path(Image.objects.get(pk=image_id).planes_path).parent
    assert (folder / "pyramid" / "level_2.npy").is_file()
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(owner).delete(f"/api/images/{image_id}/").status_code == 204
    assert not folder.exists()


def test_the_worker_builds_the_pyramid_of_a_large_upload(
    project: Project,
    owner: User,
    planes16: np.ndarray,
    django_capture_on_commit_callbacks,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from backend.images import tasks
    from backend.segmentation import tasks as segmentation_tasks

    sent: list[int] = []
    monkeypatch.setattr(tasks.build_pyramid, "delay", sent.append)
    monkeypatch.setattr(segmentation_tasks.compute_embedding, "delay", lambda *a: None)
    with django_capture_on_commit_callbacks(execute=True):
        image_id = upload(owner, project, planes16)
    assert sent == [image_id]
    tasks.build_pyramid(image_id)
    folder = media_path(Image.objects.get(pk=image_id).planes_path).parent
    assert (folder / "pyramid" / "meta.json").is_file()
