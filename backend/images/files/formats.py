"""Turn an uploaded file into planes: a (C, H, W) array in the file's own dtype.

Pure functions without Django, so the worker and scripts can use them too.
The format is recognised by content (magic bytes), never by file name:

- PNG, JPEG and binary/plain PGM go through Pillow (restricted to that one
  plugin). JPEG (and any file with an EXIF orientation) is turned upright.
  16-bit PNGs are decoded by imagecodecs so every colour type stays uint16
  (Pillow would cut 16-bit RGB to 8 bits). Alpha channels are dropped.
- TIFF and BigTIFF go through tifffile, see backend/images/files/tiff.py. A TIFF
  may hold a stack (time points, z slices) and an OME-TIFF several images.
- DICOM through pydicom (backend/images/files/dicom.py: an image, or a
  multi-frame stack, in modality units) and NIfTI volumes through nibabel
  (backend/images/files/nifti.py: axial slices, radiological view).

`open_sources` yields what a file holds as `PlaneSource`s, each one image or
one stack of (t, z) planes, read one plane at a time (a stack need not fit in
memory at once). `decode_file` is the single-image shortcut: its first plane.

Every size check happens on the header, before any pixel is decoded, so a
decompression bomb costs a few bytes of reading. Whatever a decoder raises on
a hostile or broken file becomes a DecodeError with a message for the user.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO

import imagecodecs
import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin, PpmImagePlugin

from backend.images.files.dicom import open_dicom
from backend.images.files.nifti import GZIP_MAGIC, gzipped_head, is_nifti_header, open_nifti
from backend.images.files.sources import (
    ACCEPTED,
    DICOM,
    JPEG,
    MAX_CHANNELS,
    NIFTI,
    PGM,
    PNG,
    SNIFF_BYTES,
    TIFF,
    DecodedImage,
    DecodeError,
    Limits,
    PlaneSource,
    check_pixels,
    normalise_dtype,
    single_source,
)
from backend.images.files.tiff import open_tiff

_PILLOW_PLUGIN: dict[str, type[ImageFile.ImageFile]] = {
    PNG: PngImagePlugin.PngImageFile,
    JPEG: JpegImagePlugin.JpegImageFile,
    PGM: PpmImagePlugin.PpmImageFile,
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff_format(head: bytes, gunzipped: bytes = b"") -> str:
    """The allowed format of a file from its first bytes (and, for a gzip
    file, those of its content), else DecodeError naming it."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        # DICOM's free 128-byte preamble may itself start like a TIFF.
        return DICOM
    if is_nifti_header(head) or (head.startswith(GZIP_MAGIC) and is_nifti_header(gunzipped)):
        return NIFTI
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(_TIFF_SIGNATURES):
        return TIFF
    if head[:2] in (b"P5", b"P2") and head[2:3].isspace():
        return PGM
    if not head:
        raise DecodeError("the file is empty")
    kind = _refused_kind(head)
    raise DecodeError(f"unsupported format ({kind}): upload {ACCEPTED} images")


def sniff_stream(handle: IO[bytes]) -> str:
    """`sniff_format` of an open binary file (a gzip file's content is peeked
    at: a .nii.gz); the position is left at the start."""
    handle.seek(0)
    head = handle.read(SNIFF_BYTES)
    gunzipped = b""
    if head.startswith(GZIP_MAGIC):
        handle.seek(0)
        gunzipped = gzipped_head(handle, SNIFF_BYTES)
    handle.seek(0)
    return sniff_format(head, gunzipped)


def _refused_kind(head: bytes) -> str:
    """A name for a format we do not accept, so the message says what it was."""
    prefixes = {
        b"GIF87a": "GIF",
        b"GIF89a": "GIF",
        b"BM": "BMP",
        b"\x1f\x8b": "gzip archive",
        b"PK\x03\x04": "ZIP archive",
        b"%PDF": "PDF",
        b"\x89HDF\r\n\x1a\n": "HDF5",
        b"\x00\x00\x00\x0cjP  \r\n\x87\n": "JPEG 2000",
        b"\xffO\xffQ": "JPEG 2000",
        b"P1": "PBM",
        b"P4": "PBM",
        b"P3": "PPM",
        b"P6": "PPM",
        b"8BPS": "Photoshop",
        b"\x7fELF": "executable",
        b"MZ": "executable",
    }
    for prefix, kind in prefixes.items():
        if head.startswith(prefix):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp":
        return "HEIF/MP4"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head[:64]):
        return "text"
    return "unknown type"


def decode_file(path: Path, *, max_pixels: int) -> DecodedImage:
    """The first plane of `path` (any allowed format); DecodeError if we can't read it."""
    unlimited = Limits(max_pixels=max_pixels, max_planes=2**62, max_total_pixels=2**62)
    with open_sources(path, limits=unlimited) as sources:
        first = sources[0]
        planes = read_plane(first, 0, 0)
    return DecodedImage(planes=planes, format=first.format, note=first.note)


@contextmanager
def open_sources(path: Path, *, limits: Limits) -> Iterator[list[PlaneSource]]:
    """The images of `path` (any allowed format), sizes checked against `limits`.

    The file stays open inside the block: read planes with `read_plane` there.
    DecodeError if the file is refused or cannot be read.
    """
    with path.open("rb") as handle:
        fmt = sniff_stream(handle)
        head = handle.read(SNIFF_BYTES)
    with ExitStack() as stack:
        with as_decode_error(fmt):
            if fmt == TIFF:
                tiff = open_tiff(path, limits=limits, max_channels=MAX_CHANNELS)
                sources = stack.enter_context(tiff)
            elif fmt == NIFTI:
                sources = stack.enter_context(open_nifti(path, limits=limits))
            elif fmt == DICOM:
                sources = open_dicom(path, limits=limits)
            else:
                decoded = _decode_pillow(path, fmt=fmt, head=head, max_pixels=limits.max_pixels)
                sources = [single_source(decoded)]
        yield sources


def read_plane(source: PlaneSource, t: int, z: int) -> np.ndarray:
    """Plane (t, z) of `source` as (C, H, W); whatever the decoder raises becomes DecodeError."""
    with as_decode_error(source.format):
        return source.read(t, z)


@contextmanager
def as_decode_error(fmt: str) -> Iterator[None]:
    try:
        yield
    except DecodeError:
        raise
    except MemoryError as exc:
        raise DecodeError("not enough memory to decode this image") from exc
    except Exception as exc:  # decoders raise anything on hostile input
        reason = str(exc) or type(exc).__name__
        raise DecodeError(
            f"could not decode the {fmt.upper()} data (the file looks truncated or corrupt): "
            f"{reason[:200]}"
        ) from exc


def _decode_pillow(path: Path, *, fmt: str, head: bytes, max_pixels: int) -> DecodedImage:
    # The plugin class is used directly: it parses the header only, and it
    # skips Pillow's own process-wide pixel limit, so ours is the one that counts.
    notes: list[str] = []
    try:
        im = _PILLOW_PLUGIN[fmt](path)
    except SyntaxError as exc:
        raise DecodeError(f"not a readable {fmt.upper()} file ({exc})") from exc
    with im:
        check_pixels(width=im.width, height=im.height, max_pixels=max_pixels)
        if fmt == PNG and head[24:25] == b"\x10":
            array = _png16(path, notes)
            notes.extend(_exif_note_unapplied(im))
        else:
            array = _pillow_array(im, notes)
    planes = array[np.newaxis] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    planes, dtype_note = normalise_dtype(planes)
    notes.extend(dtype_note)
    return DecodedImage(planes=np.ascontiguousarray(planes), format=fmt, note="; ".join(notes))


def _png16(path: Path, notes: list[str]) -> np.ndarray:
    """(H, W) or (H, W, C) uint16 from a 16-bit PNG of any colour type, alpha dropped."""
    array = np.asarray(imagecodecs.png_decode(path.read_bytes()))
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[..., :-1]
        notes.append("alpha channel ignored")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return array


def _exif_note_unapplied(im: Image.Image) -> list[str]:
    orientation = im.getexif().get(0x0112, 1)
    return [] if orientation in (1, None) else ["EXIF orientation ignored for a 16-bit PNG"]


def _pillow_array(im: Image.Image, notes: list[str]) -> np.ndarray:
    """(H, W) or (H, W, 3) array of an opened Pillow image, upright, without alpha."""
    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
        notes.append(f"turned upright from EXIF orientation {orientation}")
    mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        notes.append("alpha channel ignored")
    if mode == "CMYK":
        notes.append("converted from CMYK to RGB")
    if mode in ("L", "RGB", "F") or mode.startswith("I;16"):
        return np.asarray(im)
    if mode == "I":
        return _int32_to_uint16(np.asarray(im))
    if mode in ("1", "LA", "La"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))


def _int32_to_uint16(array: np.ndarray) -> np.ndarray:
    # Pillow reads 16-bit PGM as 32-bit integers; the values fit 16 bits.
    if array.size and array.min() >= 0 and array.max() <= 65535:
        return array.astype(np.uint16)
    return array.astype(np.int32)
