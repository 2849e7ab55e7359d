"""File names in datasets: the stems an export names an image's files
after, and the keys an import matches a file's image name against."""

from __future__ import annotations

import re

EXTENSION = re.compile(r"(\.nii\.gz|\.(ome\.)?[A-Za-z0-9]{1,7})$")


def stem_of(name: str) -> str:
    """A file name without its directory and extension (".ome.tif" and
    ".nii.gz" count as one)."""
    return EXTENSION.sub("", name.rsplit("/", 1)[-1])


class Stems:
    """File stems unique in an export: the image's name without its
    extension, made safe, a plane's t and z added, and its id where two
    would be the same."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.volumes: dict[int, str] = {}

    def volume(self, name: str, stack_id: int) -> str:
        """A stack's stem, the same for all its planes (taken once)."""
        if stack_id not in self.volumes:
            self.volumes[stack_id] = self.take(name, stack_id, None)
        return self.volumes[stack_id]

    def take(self, name: str, image_id: int, plane: tuple[int, int] | None) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem_of(name)).strip("._") or "image"
        if plane is not None:
            stem = f"{stem}_t{plane[0]}_z{plane[1]}"
        if stem in self.taken:
            stem = f"{stem}_{image_id}"
        self.taken.add(stem)
        return stem
