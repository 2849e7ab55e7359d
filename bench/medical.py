"""Medical volumes (issue 18): what a clinician's session costs on this machine.

- Uploading a CT series: N slices of 512 x 512 (the real CT slice of
  ../shared/data/medical, resized and moved along z) sent in one request,
  through `image_upload` (write, de-identify, group by series, decode,
  store, render); with and without de-identification, so its share shows.
- Propagating an organ: the liver of the real CT volume (30 planes) from
  its largest slice up and down through the job's own body
  (`propagation_job_run`, what the worker runs), with the offline engine
  and with a full-size vit_b (random weights: the cost counts, not the
  masks); embeddings computed as the walk reaches each plane (the user's
  case: nobody opened those planes), then again with all ready. Per plane:
  p50 and the worst.
- Exporting the series with one object on every slice: NIfTI and DICOM SEG.
"""

from __future__ import annotations

import copy
import io
import itertools
import time
from typing import Any

import numpy as np

from bench.common import SHARED_DATA, Stats, Table, django_ready, load_note, options

SIDE = 512
LIVER = 5


def run() -> list[Table]:
    django_ready()
    quick = options().quick
    return [_uploads(30 if quick else 200), _propagation(quick), _exports(30 if quick else 200)]


# --- uploads ------------------------------------------------------------------


def _series_files(count: int) -> list[Any]:
    import pydicom
    from django.core.files.uploadedfile import SimpleUploadedFile
    from pydicom.uid import generate_uid
    from skimage.transform import resize

    source = pydicom.dcmread(SHARED_DATA / "medical" / "CT_small.dcm")
    big = resize(source.pixel_array, (SIDE, SIDE), order=1, preserve_range=True).astype(np.int16)
    series = generate_uid()
    files = []
    for i in range(count):
        ds = copy.deepcopy(source)
        ds.Rows = ds.Columns = SIDE
        ds.PixelSpacing = [float(v) * 128 / SIDE for v in source.PixelSpacing]
        ds.PixelData = (big + (i % 7)).astype(np.int16).tobytes()
        x, y, z = (float(v) for v in source.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + 1.25 * i]
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(SimpleUploadedFile(f"IM{count - i:05d}.dcm", buffer.getvalue()))
    return files


def _owner_project(name: str, **fields: Any) -> Any:
    from django.contrib.auth.models import User

    from backend.projects.services import project_create

    owner, _ = User.objects.get_or_create(username="medical-bench")
    project = project_create(user=owner, name=name, labels=["liver"])
    for field, value in fields.items():
        setattr(project, field, value)
    project.save()
    return owner, project


def _uploads(count: int) -> Table:
    from backend.images.services import image_upload

    table = Table(
        title=f"Uploading a CT series of {count} slices of {SIDE} x {SIDE} in one request",
        columns=["de-identified", "seconds", "slices / s", "time ratio"],
    )
    measured = {}
    for deidentify in (False, True):
        owner, project = _owner_project(f"Series {deidentify}", deidentify_dicom=deidentify)
        files = _series_files(count)
        start = time.perf_counter()
        images = image_upload(project=project, user=owner, files=files)
        measured[deidentify] = time.perf_counter() - start
        assert len(images) == count and images[0].stack is not None
    for deidentify, seconds in measured.items():
        table.add("yes" if deidentify else "no", seconds, count / seconds,
                  seconds / measured[False])  # fmt: skip
    table.notes.append("write, de-identify (the basic profile), group by series, order along "
                       "the normal, decode, store planes and display PNGs; pyramids and "
                       "embeddings are scheduled, not computed")  # fmt: skip
    return table


# --- propagation ----------------------------------------------------------------


def _ct_project(model: str) -> tuple[Any, Any, list[Any], np.ndarray]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from backend.images.rendering import image_planes
    from backend.images.services import image_upload

    owner, project = _owner_project(f"Propagate {model}", model_name=model,
                                    settings={"model_window": {"preset": "liver", "level": 30,
                                                               "width": 150}})  # fmt: skip
    medical = SHARED_DATA / "medical"
    ct = image_upload(project=project, user=owner, files=[SimpleUploadedFile(
        "ct.nii.gz", (medical / "example_ct_sm.nii.gz").read_bytes())])  # fmt: skip
    organs = image_upload(project=project, user=owner, files=[SimpleUploadedFile(
        "organs.nii.gz", (medical / "example_seg.nii.gz").read_bytes())])  # fmt: skip
    planes = sorted(ct, key=lambda image: image.z)
    truth = np.stack([image_planes(p)[0] == LIVER for p in sorted(organs, key=lambda i: i.z)])
    return owner, project, planes, truth


def _propagate(owner: Any, planes: list[Any], truth: np.ndarray) -> tuple[float, int, Any]:
    from backend.annotations.models import Instance
    from backend.annotations.services.instances import instance_create
    from backend.propagation.run import propagation_job_run
    from backend.propagation.services import propagation_start
    from worker import rle as rle_codec

    z0 = int(np.argmax(truth.sum(axis=(1, 2))))
    Instance.objects.filter(image__in=planes).delete()
    label = planes[0].project.labels.first()
    mask = truth[z0]
    source = instance_create(image=planes[z0], user=owner, label=label,
                             rle=rle_codec.encode_crop(mask, 0, 0, *mask.shape))  # fmt: skip
    job = propagation_start(image=planes[z0], instance=source, user=owner, direction="both")
    start = time.perf_counter()
    propagation_job_run(job_id=job.pk)
    seconds = time.perf_counter() - start
    job.refresh_from_db()
    return seconds, job.created_instances, job


def _propagation(quick: bool) -> Table:
    from backend.segmentation.checkpoints import segmentation_model_install
    from backend.segmentation.models import Embedding
    from bench.common import random_vit_b_checkpoint

    table = Table(
        title="Propagating the liver through the CT volume (30 planes, from its largest slice)",
        columns=[
            "engine",
            "embeddings",
            "planes made",
            "seconds",
            "per plane p50 ms",
            "per plane max ms",
            "stopped",
        ],
    )
    engines = ["classical"] if quick else ["classical", "bench-vit-b-med"]
    if not quick:
        segmentation_model_install(name="bench-vit-b-med", arch="vit_b",
                                   checkpoint_path=random_vit_b_checkpoint())  # fmt: skip
    for model in engines:
        owner, _, planes, truth = _ct_project(model)
        Embedding.objects.filter(image__in=planes).delete()  # none yet: computed on the walk
        for state in ("computed on the walk", "all ready"):
            seconds, made, job = _propagate(owner, planes, truth)
            stats = Stats.of(_plane_ms(job))
            stopped = "; ".join(f"{k}: {v}" for k, v in job.stopped.items())
            table.add(model if model == "classical" else "vit_b (random)", state, made, seconds,
                      stats.p50, stats.max, stopped)  # fmt: skip
    table.notes.append("the job's whole body (claim, embeddings, decoding, saving each slice, "
                       "telling the image's group); per plane: between two saved slices (the "
                       "first from the job's start, loading the engine); the walk goes up, "
                       "then down: the first plane down follows the stop up")  # fmt: skip
    table.notes.append(load_note())
    return table


def _plane_ms(job: Any) -> list[float]:
    """Each plane's time: from the job's start (or the previous slice saved)
    to its slice saved, in the order the walk saved them."""
    from backend.annotations.models import Instance

    saved = sorted(
        Instance.objects.filter(object_key=job.object_key, origin="propagated").values_list(
            "created_at", flat=True
        )
    )
    moments = [job.started_at, *saved]
    return [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(moments)]


# --- exports --------------------------------------------------------------------


def _exports(count: int) -> Table:
    from backend.annotations.services.instances import instance_create
    from backend.datasets.models import Export
    from backend.datasets.run import export_run
    from backend.images.services import image_upload
    from worker import rle as rle_codec

    owner, project = _owner_project("Export series")
    planes = image_upload(project=project, user=owner, files=_series_files(count))
    label = project.labels.first()
    yy, xx = np.mgrid[:SIDE, :SIDE]
    for plane in planes:
        disc = (yy - 256) ** 2 + (xx - 256) ** 2 < (60 + plane.z % 20) ** 2
        made = instance_create(image=plane, user=owner, label=label,
                               rle=rle_codec.encode_crop(disc, 0, 0, SIDE, SIDE))  # fmt: skip
        made.object_key = "organ"
        made.save(update_fields=["object_key"])
    table = Table(title=f"Exporting the series ({count} slices, one object on each)",
                  columns=["format", "seconds", "slices / s", "zip MiB"])  # fmt: skip
    for fmt in ("nifti", "dicom-seg"):
        export = Export.objects.create(project=project, created_by=owner, format=fmt,
                                       options={"split": "all", "images": False})  # fmt: skip
        start = time.perf_counter()
        export_run(export_id=export.pk)
        seconds = time.perf_counter() - start
        export.refresh_from_db()
        assert export.status == "done", export.error
        table.add(fmt, seconds, count / seconds, export.size / 2**20)
    return table
