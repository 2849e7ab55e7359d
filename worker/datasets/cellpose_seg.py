"""Cellpose's GUI file, `name_seg.npy`: a NumPy file holding a pickled
dict whose "masks" is the label image. Pickle runs code when it loads, so
the file is read with an unpickler that rebuilds only NumPy arrays, their
dtypes and scalars (and the plain values pickle makes without looking a
class up): anything else in the file refuses it."""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from worker.datasets.readers import ImportRefusedError, ReadImage, label_image_array

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
SUFFIX = "_seg"


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "numpy" and name.startswith("dtypes"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a _seg.npy")


def seg_npy_masks(source: str, data: bytes) -> np.ndarray:
    """The "masks" label image of a Cellpose `_seg.npy`."""
    stream = io.BytesIO(data)
    try:
        version = npy_format.read_magic(stream)
        read_header = {(1, 0): npy_format.read_array_header_1_0,
                       (2, 0): npy_format.read_array_header_2_0}.get(version)  # fmt: skip
        if read_header is None:
            raise ValueError(f"NumPy format version {version}")
        shape, _, dtype = read_header(stream)
    except ValueError as exc:
        raise ImportRefusedError(f"{source}: not a NumPy file ({exc})") from None
    if dtype.hasobject:
        try:
            loaded = _ArraysOnly(stream).load()
        except Exception as exc:
            raise ImportRefusedError(f"{source}: not a Cellpose _seg.npy ({exc})") from None
        content = np.asarray(loaded).reshape(shape)
        content = content.item() if content.shape == () else content
    else:
        raise ImportRefusedError(f"{source}: a _seg.npy holds Cellpose's dict, not a bare array")
    masks = content.get("masks") if isinstance(content, dict) else None
    if not isinstance(masks, np.ndarray):
        raise ImportRefusedError(f"{source}: the file has no masks")
    return masks


def seg_npy_read(source: str, name: str, data: bytes, split: str = "") -> ReadImage:
    return label_image_array(source, name, seg_npy_masks(source, data), None, split=split)
