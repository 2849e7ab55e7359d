"""The export's manifest: an RO-Crate (`ro-crate-metadata.json`, written with
the `rocrate` library) that people and programs can read. The crate is the
dataset: the project's name, when and by which maskroom it was made, the
label classes (DefinedTerms), the models whose prompts and proposals made
masks (with their checkpoints' sha256), the export's folders and files,
and `provenance.csv` (one row per instance: author pseudonyms, created and
last changed, origin, consensus support), all tied to one CreateAction."""

from __future__ import annotations

import json
import tomllib
import zipfile
from functools import cache
from typing import Any

from django.conf import settings
from django.utils import timezone
from rocrate.model.contextentity import ContextEntity
from rocrate.rocrate import ROCrate

from backend.datasets.models import Export
from backend.proposals.models import ProposalJob
from backend.segmentation.models import SegmentationModel
from backend.segmentation.selectors import engine_spec_for_project
from worker.datasets.items import Category
from worker.engines.spec import EngineSpec

MASKROOM = "https://github.com/maskroom/maskroom"
FORMAT_NAMES = {
    "coco": "COCO instance segmentation (compressed RLE)",
    "labels": "label images (TIFF, 0 background, one value per instance)",
    "cellpose": "Cellpose training folders (name.tif, name_masks.tif)",
    "stardist": "StarDist training folders (images/, masks/)",
    "ome-zarr": "OME-Zarr images with NGFF labels (labels/instances)",
    "yolo": "YOLO segmentation (normalised outlines, data.yaml)",
    "nifti": "NIfTI label volumes in the source's voxel grid and affine",
    "dicom-seg": "DICOM Segmentation objects referencing the source series",
}


@cache
def maskroom_version() -> str:
    try:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def manifest(
    *, export: Export, categories: list[Category], entries: list[str], figures: dict[str, Any]
) -> dict[str, Any]:
    crate = ROCrate()
    project = export.project
    crate.name = f"{project.name}: {export.format} export"
    crate.description = (
        f"Instances of maskroom project {project.name!r} (id {project.pk}) as "
        f"{FORMAT_NAMES[export.format]}; split {export.options.get('split', 'all')}."
    )
    crate.datePublished = timezone.now().isoformat()
    crate.root_dataset["license"] = "https://creativecommons.org/licenses/by/4.0/"
    about_maskroom = {"@type": "SoftwareApplication", "name": "maskroom",
                      "version": maskroom_version()}  # fmt: skip
    software = crate.add(ContextEntity(crate, MASKROOM, properties=about_maskroom))
    results = []
    for folder in sorted({e.split("/", 1)[0] for e in entries if "/" in e}):
        results.append(crate.add_dataset(dest_path=f"{folder}/", properties={"name": folder}))
    for name in sorted(e for e in entries if "/" not in e):
        about = {"provenance.csv": "One row per instance: who made it (pseudonyms), when, "
                 "its origin and its consensus support."}.get(name, name)  # fmt: skip
        properties = {"name": name, "description": about}
        results.append(crate.add_file(dest_path=name, properties=properties))
    labels = [
        crate.add(ContextEntity(crate, f"#label-{c.id}", properties={
            "@type": "DefinedTerm", "name": c.name, "termCode": str(c.id), "color": c.color}))
        for c in categories
    ]  # fmt: skip
    models = [crate.add(ContextEntity(crate, f"#model-{m['key']}", properties=m))
              for m in _models(export)]  # fmt: skip
    crate.add_action(software, object=models, result=results, properties={
        "name": f"export {export.pk}", "endTime": timezone.now().isoformat(),
        "description": json.dumps(figures, sort_keys=True)})  # fmt: skip
    crate.root_dataset["about"] = [{"@id": label.id} for label in labels]
    crate.root_dataset["identifier"] = f"maskroom-project-{project.pk}-export-{export.pk}"
    metadata: dict[str, Any] = crate.metadata.generate()
    return metadata


def manifest_write(
    out: zipfile.ZipFile, *, export: Export, categories: list[Category], figures: dict[str, Any]
) -> None:
    document = manifest(
        export=export, categories=categories, entries=out.namelist(), figures=figures
    )
    out.writestr("ro-crate-metadata.json", json.dumps(document, indent=1))


def _models(export: Export) -> list[dict[str, Any]]:
    """The project's model now (its prompts), and every model its proposal jobs used."""
    spec = engine_spec_for_project(export.project)
    proposing = set(
        ProposalJob.objects.filter(project=export.project)
        .exclude(engine_key="")
        .values_list("engine_key", flat=True)
    )
    installed = {
        s.key: s
        for s in (
            EngineSpec(name=m.name, arch=m.arch, checkpoint_path="", sha256=m.sha256)
            for m in SegmentationModel.objects.all()
        )
    }
    installed[spec.key] = spec
    found = []
    for key in sorted({spec.key} | proposing):
        uses = [
            use for use, on in (("prompts", key == spec.key), ("proposals", key in proposing)) if on
        ]
        entry: dict[str, Any] = {"@type": "SoftwareApplication", "name": key, "key": key,
                                 "usedFor": " and ".join(uses)}  # fmt: skip
        known = installed.get(key)
        if known is not None:
            entry.update(name=known.name, additionalType=known.arch, sha256=known.sha256)
        found.append(entry)
    return found
