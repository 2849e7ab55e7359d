"""Uploads of real and hostile files: what is read, and what is refused.

Real files come from ../shared/data (see its README); hostile ones are
crafted here in a few bytes.
"""

from __future__ import annotations

import gzip
import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from django.conf import settings
from django.contrib.auth.models import User
from PIL import Image as PILImage
from PIL import ImageOps

from backend.images.models import Image
from backend.projects.models import Project
from tests.conftest import client_for, shared_data

pytestmark = pytest.mark.django_db


def post_files(user: User, project: Project, *files: io.IOBase):
    return client_for(user).post(f"/api/projects/{project.pk}/images/", {"file": list(files)})


def named(data: bytes | bytearray, name: str) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


def stored_planes(image_id: int) -> np.ndarray:
    image = Image.objects.get(pk=image_id)
    return np.load(Path(settings.MEDIA_ROOT) / image.planes_path)


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# (file, format, channels, dtype, width, height, part of the note)
REAL_FILES = [
    ("nuclei_dsb2018/image.tif", "tiff", 1, "uint16", 512, 512, ""),
    ("multichannel_16bit/bbbc022_3ch.tif", "tiff", 3, "uint16", 695, 395, ""),
    ("nuclei_timelapse/images.tif", "tiff", 1, "uint16", 200, 200, "6 planes from axes QYX"),
    ("multidim/tyx_timeseries_uint16.tiff", "tiff", 1, "uint16", 356, 198, "from axes TYX"),
    ("multidim/tzcyx_5d_uint16.tiff", "tiff", 2, "uint16", 169, 169, "6 planes from axes TZCYX"),
    ("multidim/zcyx_zstack_2ch.tiff", "tiff", 2, "uint8", 50, 50, "25 planes from axes ZCYX"),
    ("multidim/yxt_axes_last_edgecase.tiff", "tiff", 1, "uint8", 265, 530, "from axes YXT"),
    ("ome_tiff/multiseries_6x_CYX.ome.tiff", "tiff", 4, "uint16", 5, 5, ""),  # 6 images
    ("ome_tiff/serialcellpose_tile_0_0.ome.tif", "tiff", 2, "uint8", 256, 256, ""),
    ("odd_layouts/12bit.cropped.tif", "tiff", 1, "uint16", 100, 100, ""),
    ("odd_layouts/16bit.deflate.tif", "tiff", 1, "uint16", 64, 64, ""),
    ("odd_layouts/16bit.s.tif", "tiff", 1, "int16", 10, 10, ""),
    ("odd_layouts/hopper_bigtiff.tif", "tiff", 3, "uint8", 128, 128, ""),
    ("odd_layouts/multipage.tiff", "tiff", 1, "uint8", 10, 10, "holds 2 images (series)"),
    ("odd_layouts/separate_planar_extra_samples.tiff", "tiff", 2, "int8", 50, 50, ""),
    ("odd_layouts/tiff_strip_ycbcr_jpeg_2x2_sampling.tif", "tiff", 3, "uint8", 480, 360, ""),
    ("odd_layouts/tiff_tiled_planar_16bit_RGBa.tiff", "tiff", 4, "uint16", 100, 40, ""),
    ("odd_layouts/uint16_1_4660.tif", "tiff", 1, "uint16", 10, 10, ""),
    ("odd_layouts/hopper_16bit.pgm", "pgm", 1, "uint16", 128, 128, ""),
    ("odd_layouts/hopper_orientation_6.jpg", "jpeg", 3, "uint8", 128, 128, "EXIF orientation 6"),
    ("em_membranes/image.png", "png", 1, "uint8", 512, 512, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("relative", "fmt", "channels", "dtype", "width", "height", "note"), REAL_FILES
)
def test_it_reads_real_files(
    project: Project, owner: User, relative: str, fmt: str, channels: int, dtype: str,
    width: int, height: int, note: str,
) -> None:  # fmt: skip
    with shared_data(relative).open("rb") as handle:
        response = post_files(owner, project, handle)
    assert response.status_code == 201, response.json()
    body = response.json()["images"][0]  # a stack's first plane; see test_stacks.py
    assert body["name"].startswith(Path(relative).name)
    assert (body["format"], body["channels"], body["dtype"]) == (fmt, channels, dtype)
    assert (body["width"], body["height"]) == (width, height)
    assert note in body["note"] and (note or body["note"] == "")
    planes = stored_planes(body["id"])
    assert planes.shape == (channels, height, width) and planes.dtype == np.dtype(dtype)
    display = client_for(owner).get(body["display_url"])
    rgb = PILImage.open(io.BytesIO(b"".join(display.streaming_content)))
    assert rgb.mode == "RGB" and rgb.size == (width, height)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("nuclei_dsb2018/image.tif", lambda a: a[np.newaxis]),
        ("multichannel_16bit/bbbc022_3ch.tif", lambda a: a),  # CYX
        ("multidim/tzcyx_5d_uint16.tiff", lambda a: a[0, 0]),  # T0 Z0, both channels
        ("multidim/tyx_timeseries_uint16.tiff", lambda a: a[:1]),
        ("odd_layouts/tiff_tiled_planar_16bit_RGBa.tiff", lambda a: a),  # SYX
        ("odd_layouts/hopper_bigtiff.tif", lambda a: np.moveaxis(a, -1, 0)),  # YXS
    ],
)
def test_it_keeps_tiff_values_exactly(project: Project, owner: User, relative, expected) -> None:
    path = shared_data(relative)
    with path.open("rb") as handle:
        image_id = post_files(owner, project, handle).json()["images"][0]["id"]
    np.testing.assert_array_equal(stored_planes(image_id), expected(tifffile.imread(path)))


def test_it_turns_an_exif_rotated_jpeg_upright(project: Project, owner: User) -> None:
    path = shared_data("odd_layouts/hopper_orientation_6.jpg")
    with path.open("rb") as handle:
        image_id = post_files(owner, project, handle).json()["images"][0]["id"]
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    np.testing.assert_array_equal(stored_planes(image_id), np.moveaxis(upright, -1, 0))
    raw = np.asarray(PILImage.open(path))
    assert not np.array_equal(stored_planes(image_id), np.moveaxis(raw, -1, 0))


def test_it_keeps_16_bit_pgm_values(project: Project, owner: User) -> None:
    path = shared_data("odd_layouts/hopper_16bit.pgm")
    with path.open("rb") as handle:
        image_id = post_files(owner, project, handle).json()["images"][0]["id"]
    expected = np.asarray(PILImage.open(path)).astype(np.uint16)
    np.testing.assert_array_equal(stored_planes(image_id)[0], expected)


@pytest.mark.parametrize("shape", [(12, 20), (12, 20, 3), (12, 20, 4)])
def test_it_keeps_16_bit_png_as_uint16(project: Project, owner: User, shape) -> None:
    import imagecodecs

    array = np.random.default_rng(1).integers(0, 65535, shape, dtype=np.uint16)
    response = post_files(owner, project, named(imagecodecs.png_encode(array), "deep.png"))
    [body] = response.json()["images"]
    assert body["dtype"] == "uint16"
    expected = array[np.newaxis] if array.ndim == 2 else np.moveaxis(array[..., :3], -1, 0)
    np.testing.assert_array_equal(stored_planes(body["id"]), expected)


def test_it_drops_the_alpha_of_an_rgba_png(project: Project, owner: User) -> None:
    array = np.random.default_rng(2).integers(0, 255, (6, 7, 4), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(array, mode="RGBA").save(buffer, format="PNG")
    [body] = post_files(owner, project, named(buffer.getvalue(), "a.png")).json()["images"]
    assert body["channels"] == 3 and "alpha" in body["note"]
    np.testing.assert_array_equal(stored_planes(body["id"]), np.moveaxis(array[..., :3], -1, 0))


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("malformed/truncated_end_chunk.png", "truncated"),
        ("malformed/broken.png", "not a readable PNG"),
        ("malformed/crash-86214e58da443d2b80820cff9677a38a33dcbbca.tif", "could not decode"),
        ("malformed/tiff_overflow_rows_per_strip.tif", "corrupt"),
        ("medical/liver_1frame.dcm", "a DICOM Segmentation (labels, not an image)"),
        ("medical/MR_truncated.dcm", "pixel data is less than expected"),
    ],
)
def test_it_refuses_malformed_and_foreign_files(
    project: Project, owner: User, relative: str, reason: str
) -> None:
    with shared_data(relative).open("rb") as handle:
        response = post_files(owner, project, handle)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith(f"{Path(relative).name}: ") and reason in detail
    assert not Image.objects.exists() and media_files() == []


@pytest.mark.parametrize(
    ("relative", "keep", "reason"),
    [
        ("nuclei_dsb2018/image.tif", 0.3, "failed to read"),
        # The page chain breaks after the first of three channels: refuse
        # rather than quietly keep one channel.
        ("multichannel_16bit/bbbc022_3ch.tif", 0.9, "the TIFF file is damaged"),
        ("odd_layouts/16bit.deflate.tif", 0.5, "no readable image"),
        ("odd_layouts/tiff_tiled_planar_16bit_RGBa.tiff", 0.9, "corrupted tile"),
        ("odd_layouts/hopper_orientation_6.jpg", 0.9, "truncated"),
        ("odd_layouts/hopper_16bit.pgm", 0.9, "truncated"),
    ],
)
def test_it_refuses_real_files_cut_short(
    project: Project, owner: User, relative: str, keep: float, reason: str
) -> None:
    data = shared_data(relative).read_bytes()
    response = post_files(owner, project, named(data[: int(len(data) * keep)], "cut"))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("cut: ") and reason in response.json()["detail"]
    assert not Image.objects.exists() and media_files() == []


def test_it_refuses_a_png_cut_short(project: Project, owner: User) -> None:
    array = np.random.default_rng(3).integers(0, 255, (64, 64), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    response = post_files(owner, project, named(buffer.getvalue()[:400], "half.png"))
    assert response.status_code == 400
    assert "half.png: could not decode the PNG data" in response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"GIF89a" + bytes(40), "GIF"),
        (b"BM" + bytes(60), "BMP"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(40), "WebP"),
        (b"%PDF-1.7\n" + bytes(40), "PDF"),
        (b"P6\n2 2\n255\n" + bytes(12), "PPM"),
        (b"hello, this is not an image at all\n", "text"),
        (b"\x00\x01\x02\x03\xfe\xfa", "unknown type"),
        (gzip.compress(b"just some text, gzipped"), "gzip archive"),
    ],
)
def test_it_refuses_other_formats_by_content(
    project: Project, owner: User, data: bytes, kind: str
) -> None:
    response = post_files(owner, project, named(data, "looks-fine.png"))
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"looks-fine.png: unsupported format ({kind}): upload PNG, JPEG, TIFF, PGM, DICOM or "
        "NIfTI images"
    )


def test_it_reads_a_png_named_like_something_else(project: Project, owner: User) -> None:
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((3, 3), np.uint8)).save(buffer, format="PNG")
    response = post_files(owner, project, named(buffer.getvalue(), "scan.tif"))
    assert response.status_code == 201
    assert response.json()["images"][0]["format"] == "png"


def test_it_refuses_an_empty_file(project: Project, owner: User) -> None:
    response = post_files(owner, project, named(b"", "empty.png"))
    assert response.status_code == 400
    assert response.json()["detail"] == "empty.png: the file is empty."


def test_it_refuses_a_file_over_the_byte_limit(project: Project, owner: User, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 1000
    buffer = io.BytesIO()
    noise = np.random.default_rng(4).integers(0, 255, (64, 64), dtype=np.uint8)
    PILImage.fromarray(noise).save(buffer, format="PNG")
    response = post_files(owner, project, named(buffer.getvalue(), "big.png"))
    assert response.status_code == 400
    assert "more than the upload limit of 1,000 bytes" in response.json()["detail"]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def bomb_png(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims width x height 8-bit grey pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat or zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def bomb_tiff(width: int, height: int) -> bytes:
    """A 150-byte little-endian TIFF whose tags claim width x height 8-bit pixels."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample, SHORT
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # StripOffsets: right after the IFD
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(16)


def bomb_jpeg(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is patched to claim width x height."""
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (bomb_png(100_000, 100_000), "bomb.png"),
        (bomb_tiff(100_000, 100_000), "bomb.tif"),
        (bomb_jpeg(65_000, 65_000), "bomb.jpg"),
    ],
)
def test_it_refuses_decompression_bombs_from_the_header(
    project: Project, owner: User, data: bytes, name: str
) -> None:
    started = time.monotonic()
    response = post_files(owner, project, named(data, name))
    assert time.monotonic() - started < 2
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith(f"{name}: the image") and "limit of 400,000,000 pixels" in detail
    assert not Image.objects.exists() and media_files() == []


def test_it_refuses_a_real_png_bomb_without_inflating_it(
    project: Project, owner: User, settings
) -> None:
    """4 MB of zeros compress to 4 kB; the limit stops it before inflating."""
    import tracemalloc

    settings.MAX_IMAGE_PIXELS = 1_000_000
    rows = b"".join(b"\x00" + bytes(2000) for _ in range(2000))
    data = bomb_png(2000, 2000, zlib.compress(rows, 9))
    assert len(data) < 10_000
    tracemalloc.start()
    response = post_files(owner, project, named(data, "zeros.png"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert response.status_code == 400
    assert "2000x2000 pixels, more than the limit of 1,000,000" in response.json()["detail"]
    assert peak < 2_000_000


def test_it_accepts_an_image_at_the_pixel_limit(project: Project, owner: User, settings) -> None:
    settings.MAX_IMAGE_PIXELS = 12 * 10
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((10, 12), np.uint8)).save(buffer, format="PNG")
    assert post_files(owner, project, named(buffer.getvalue(), "ok.png")).status_code == 201
    PILImage.fromarray(np.zeros((11, 12), np.uint8)).save(buffer := io.BytesIO(), format="PNG")
    assert post_files(owner, project, named(buffer.getvalue(), "no.png")).status_code == 400


def test_it_refuses_more_than_8_channels(project: Project, owner: User) -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((9, 8, 8), np.uint16), metadata={"axes": "CYX"})
    response = post_files(owner, project, named(buffer.getvalue(), "nine.tif"))
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "nine.tif: the image has 9 channels; at most 8 are supported"
    )


def test_it_accepts_8_channels(project: Project, owner: User) -> None:
    buffer = io.BytesIO()
    array = np.arange(8 * 4 * 5, dtype=np.uint16).reshape(8, 4, 5)
    tifffile.imwrite(buffer, array, metadata={"axes": "CYX"})
    [body] = post_files(owner, project, named(buffer.getvalue(), "eight.tif")).json()["images"]
    assert body["channels"] == 8
    np.testing.assert_array_equal(stored_planes(body["id"]), array)


def test_it_reads_every_plane_of_a_long_stack(project: Project, owner: User) -> None:
    buffer = io.BytesIO()
    stack = np.random.default_rng(5).integers(0, 4000, (40, 2, 16, 16), dtype=np.uint16)
    tifffile.imwrite(buffer, stack, imagej=True, metadata={"axes": "TCYX"})
    bodies = post_files(owner, project, named(buffer.getvalue(), "movie.tif")).json()["images"]
    assert len(bodies) == 40 and all(body["channels"] == 2 for body in bodies)
    assert bodies[0]["note"] == "stack of 40 planes from axes TCYX"
    for t, body in enumerate(bodies):
        np.testing.assert_array_equal(stored_planes(body["id"]), stack[t])


def test_it_stores_float_tiffs_as_float32(project: Project, owner: User) -> None:
    buffer = io.BytesIO()
    array = np.linspace(-1.5, 2.5, 6 * 7).reshape(6, 7)
    tifffile.imwrite(buffer, array)  # float64
    [body] = post_files(owner, project, named(buffer.getvalue(), "f.tif")).json()["images"]
    assert body["dtype"] == "float32" and "float64" in body["note"]
    np.testing.assert_allclose(stored_planes(body["id"])[0], array.astype(np.float32))


@pytest.mark.parametrize(
    "relative",
    [
        "multichannel_16bit/bbbc022_3ch.tif",
        "odd_layouts/tiff_tiled_planar_16bit_RGBa.tiff",
        "odd_layouts/hopper_orientation_6.jpg",
        "ome_tiff/serialcellpose_tile_0_0.ome.tif",
    ],
)
def test_the_model_sees_the_display_png(project: Project, owner: User, relative: str) -> None:
    from backend.images.rendering import image_model_rgb, image_planes

    with shared_data(relative).open("rb") as handle:
        image_id = post_files(owner, project, handle).json()["images"][0]["id"]
    image = Image.objects.get(pk=image_id)
    display = np.asarray(PILImage.open(Path(settings.MEDIA_ROOT) / image.display_path))
    model_rgb = image_model_rgb(image)
    assert model_rgb.shape == (image.height, image.width, 3) and model_rgb.dtype == np.uint8
    np.testing.assert_array_equal(model_rgb, display)
    assert image_planes(image).shape == (image.channels, image.height, image.width)


def test_a_project_channel_mapping_drives_display_and_model(project: Project, owner: User) -> None:
    from backend.images.rendering import image_model_rgb

    project.settings = {"channel_mapping": [None, 2, None]}  # only channel 2, as green
    project.save()
    with shared_data("multichannel_16bit/bbbc022_3ch.tif").open("rb") as handle:
        image_id = post_files(owner, project, handle).json()["images"][0]["id"]
    image = Image.objects.get(pk=image_id)
    display = np.asarray(PILImage.open(Path(settings.MEDIA_ROOT) / image.display_path))
    assert not display[..., 0].any() and not display[..., 2].any() and display[..., 1].any()
    np.testing.assert_array_equal(image_model_rgb(image), display)


# Files whose pixels read correctly but whose description of their shape
# (left by a program that cropped or cut them) disagrees with their pages.
DISAGREEING = [
    ("shaped description of three planes, one page", {"description": '{"shape": [3, 60, 80]}'},
     "shape description (3x60x80) does not match its pages"),
    ("ImageJ description of five slices, one page",
     {"description": "ImageJ=1.53t\nimages=5\nslices=5\n"},
     "ImageJ description does not match its pages"),
    ("ImageJ hyperstack of three channels, one page",
     {"description": "ImageJ=1.54f\nimages=3\nchannels=3\nhyperstack=true\nmode=composite\n"},
     "ImageJ description does not match its pages"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "written", "says"), DISAGREEING, ids=[c[0] for c in DISAGREEING])
def test_a_file_whose_metadata_disagrees_with_its_pages_opens_from_its_pages(
    project: Project, owner: User, tmp_path: Path, case: str, written: dict[str, str], says: str
) -> None:
    pixels = (np.arange(60 * 80, dtype=np.uint16) * 7 % 4096).reshape(60, 80)
    path = tmp_path / "cropped.tif"
    tifffile.imwrite(path, pixels, metadata=None, **written)  # type: ignore[arg-type]
    with path.open("rb") as handle:
        response = post_files(owner, project, handle)
    assert response.status_code == 201, (case, response.json())
    body = response.json()["images"][0]
    assert says in body["note"] and "read from its pages" in body["note"]
    np.testing.assert_array_equal(stored_planes(body["id"]), pixels[np.newaxis])
