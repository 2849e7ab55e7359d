"""Demo images: synthetic fluorescent nuclei with their ground truth, and
scikit-image's bundled sample images.

The nuclei are drawn like a widefield fluorescence field: non-overlapping
ellipses whose brightness falls off towards the rim, blurred by the optics,
on a slowly varying background, with shot noise and camera read noise. The
generator is deterministic for a seed, so tests can rely on the label map.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class SyntheticNuclei:
    """`image`: (H, W) uint16 counts; `labels`: (H, W) int32, 0 = background,
    1..n = one nucleus each, in the same pixel frame."""

    image: np.ndarray
    labels: np.ndarray

    @property
    def count(self) -> int:
        return int(self.labels.max())


def synthetic_nuclei(
    *,
    seed: int = 0,
    height: int = 512,
    width: int = 512,
    count: int = 40,
    radius_px: tuple[float, float] = (9.0, 20.0),
) -> SyntheticNuclei:
    """Up to `count` nuclei with semi-axes drawn from `radius_px` (pixels);
    fewer when the field fills up before that."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), dtype=np.int32)
    signal = np.zeros((height, width), dtype=np.float64)
    placed = 0
    for _ in range(count * 40):
        if placed == count:
            break
        nucleus = _random_ellipse(rng, height=height, width=width, radius_px=radius_px)
        if nucleus is None:
            continue
        (ys, xs), rim_distance = nucleus
        inside = rim_distance < 1.0
        if _too_close(labels, ys, xs, inside, gap_px=3):
            continue
        placed += 1
        labels[ys, xs][inside] = placed
        brightness = rng.uniform(450.0, 1400.0)
        texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, inside.shape), 2.0)
        profile = (1.0 - 0.45 * rim_distance**2) * (1.0 + 0.12 * texture)
        signal[ys, xs] += np.where(inside, brightness * profile, 0.0)
    image = _acquire(signal, rng)
    return SyntheticNuclei(image=image, labels=labels)


def _too_close(
    labels: np.ndarray, ys: slice, xs: slice, inside: np.ndarray, *, gap_px: int
) -> bool:
    """Whether the new nucleus would come within gap_px of a placed one; the gap
    keeps nuclei apart in the ground truth."""
    height, width = labels.shape
    y0, x0 = max(ys.start - gap_px, 0), max(xs.start - gap_px, 0)
    y1, x1 = min(ys.stop + gap_px, height), min(xs.stop + gap_px, width)
    near = ndimage.binary_dilation(labels[y0:y1, x0:x1] > 0, iterations=gap_px)
    near = near[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return bool((near & inside).any())


def _random_ellipse(
    rng: np.random.Generator, *, height: int, width: int, radius_px: tuple[float, float]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """A random ellipse's bounding box and, inside it, each pixel's normalised
    distance from the centre (1.0 on the rim). None if it would leave the image."""
    a = rng.uniform(*radius_px)
    b = a * rng.uniform(0.6, 1.0)
    angle = rng.uniform(0.0, np.pi)
    cy = rng.uniform(a + 2, height - a - 2)
    cx = rng.uniform(a + 2, width - a - 2)
    y0, y1 = int(cy - a) - 1, int(cy + a) + 2
    x0, x1 = int(cx - a) - 1, int(cx + a) + 2
    if y0 < 0 or x0 < 0 or y1 > height or x1 > width:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    # Pixel centres sit at integer + 0.5.
    dy, dx = yy + 0.5 - cy, xx + 0.5 - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    rim_distance = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return (slice(y0, y1), slice(x0, x1)), rim_distance


def _acquire(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optics blur, background, shot noise and read noise; uint16 counts."""
    height, width = signal.shape
    blurred = ndimage.gaussian_filter(signal, 1.6)
    yy, xx = np.mgrid[0:height, 0:width]
    background = 110.0 + 40.0 * (xx / width) + 25.0 * np.sin(yy / height * np.pi)
    photons = rng.poisson(blurred + background).astype(np.float64)
    counts = photons + rng.normal(0.0, 6.0, signal.shape)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def tiff_bytes(array: np.ndarray) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def skimage_samples() -> dict[str, bytes]:
    """scikit-image's bundled cell and immunohistochemistry images, as PNG files."""
    from skimage import data

    return {
        "cell.png": png_bytes(data.cell()),
        "ihc.png": png_bytes(data.immunohistochemistry()),
    }


def demo_files() -> list[tuple[str, bytes]]:
    """The demo project's images as (file name, file bytes), in upload order."""
    files = list(skimage_samples().items())
    for seed in (1, 2):
        nuclei = synthetic_nuclei(seed=seed)
        files.append((f"synthetic-nuclei-{seed}.tif", tiff_bytes(nuclei.image)))
    return files
