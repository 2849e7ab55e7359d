"""The body of a training job (Celery task `training.run`).

1. Claim the job; decide the split (splitting.py).
2. Train (kinds.py) into a temporary file; the job's curve grows each epoch.
3. Record the weights as a model of the project (named after the job, the
   file named by its sha256) and measure the project's current model and
   the new one on the validation images (worker/training/validation.py).
4. Record the version with its figures; adopt it when it is better.

Cancelling (services.training_cancel) is seen between epochs and between
validation images: the temporary file, a recorded model and its embeddings
are all removed, and no version is left.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from backend.common.errors import ServiceError
from backend.datasets.holdout import validation_split
from backend.evaluations.data import validation_images
from backend.segmentation.engines import engine_for
from backend.segmentation.models import SegmentationModel
from backend.segmentation.selectors import engine_spec_for_project, spec_for_model
from backend.segmentation.trained import trained_model_discard, trained_model_register
from backend.training.kinds import SHORT_NAMES, TRAINERS, Trained
from backend.training.models import ModelVersion, TrainingJob
from backend.training.versions import version_adopt
from worker.engines.spec import EngineSpec
from worker.training.cancelling import TrainingCancelledError
from worker.training.validation import MAX_OBJECTS, better, validation_figures

logger = logging.getLogger(__name__)

# Shares of the progress bar: training, then the two validations.
TRAINING_SHARE, BEFORE_SHARE = 0.6, 0.2


def training_run(*, job_id: int) -> None:
    job = _claim(job_id)
    if job is None:
        return
    model: SegmentationModel | None = None
    partial = _models_dir(job) / f"job-{job.pk}.part"
    try:
        model = _train(job, partial)
    except TrainingCancelledError:
        _finish(job_id, TrainingJob.Status.CANCELLED, "Cancelled.")
    except (ServiceError, ValueError) as exc:
        _finish(job_id, TrainingJob.Status.FAILED, str(exc))
    except Exception as exc:
        logger.exception("training job %s failed", job_id)
        _finish(job_id, TrainingJob.Status.FAILED, f"{type(exc).__name__}: {exc}")
    else:
        _finish(job_id, TrainingJob.Status.DONE, "")
        return
    finally:
        partial.unlink(missing_ok=True)
    if model is not None:  # a failure after the model was recorded: nothing stays
        with transaction.atomic():
            trained_model_discard(model=model)


def _claim(job_id: int) -> TrainingJob | None:
    with transaction.atomic():
        job = (
            TrainingJob.objects.select_for_update(of=("self",))
            .select_related("project", "created_by")
            .filter(pk=job_id)
            .first()
        )
        if job is None or job.status != TrainingJob.Status.QUEUED:
            return None
        if job.cancel_requested:
            job.status, job.finished_at = TrainingJob.Status.CANCELLED, timezone.now()
            job.save(update_fields=["status", "finished_at"])
            return None
        job.status = TrainingJob.Status.RUNNING
        job.save(update_fields=["status"])
    return job


def _finish(job_id: int, status: str, message: str) -> None:
    done = status == TrainingJob.Status.DONE
    changes: dict[str, Any] = {"progress": 1.0} if done else {"error": message[:4000]}
    TrainingJob.objects.filter(pk=job_id).update(
        status=status, message="Done." if done else message[:200], finished_at=timezone.now(),
        **changes,
    )  # fmt: skip


def _cancelled(job_id: int) -> bool:
    return bool(
        TrainingJob.objects.filter(pk=job_id).values_list("cancel_requested", flat=True).first()
    )


def _models_dir(job: TrainingJob) -> Path:
    folder = Path(settings.MODELS_ROOT) / "projects" / str(job.project_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _train(job: TrainingJob, partial: Path) -> SegmentationModel:
    """The model it recorded (removed by the caller if a later step fails)."""
    project = job.project
    split = validation_split(project=project)
    base = engine_spec_for_project(project)
    TrainingJob.objects.filter(pk=job.pk).update(
        split=split.as_json(), base_model=base.name, message="Training…"
    )
    curve: list[dict[str, Any]] = []

    def stage_done(point: dict[str, Any]) -> None:
        curve.append(point)
        share = TRAINING_SHARE * point["epoch"] / max(point.get("epochs", 0), point["epoch"])
        TrainingJob.objects.filter(pk=job.pk).update(curve=curve, progress=share)

    started = time.monotonic()
    trained = TRAINERS[job.kind](
        project, split, job.options, partial, stage_done, lambda: _cancelled(job.pk)
    )
    seconds = time.monotonic() - started
    model = _record_model(job, partial, trained)
    TrainingJob.objects.filter(pk=job.pk).update(
        curve=trained.curve, seconds=round(seconds, 2), progress=TRAINING_SHARE,
        message="Validating the current model…",
    )  # fmt: skip
    before = _figures(job, base, split.val, TRAINING_SHARE, BEFORE_SHARE)
    TrainingJob.objects.filter(pk=job.pk).update(before=before, message="Validating the new one…")
    # A detector keeps its base's decoder and embeddings: its clicks are the
    # base's by construction, so only its proposals are measured again.
    clicks = job.kind != "detector"
    after = _figures(job, spec_for_model(model), split.val, TRAINING_SHARE + BEFORE_SHARE,
                     1.0 - TRAINING_SHARE - BEFORE_SHARE, clicks=clicks)  # fmt: skip
    if not clicks:
        after = {**before, **after}
    TrainingJob.objects.filter(pk=job.pk).update(after=after)
    _record_version(job, model, base, before, after)
    return model


def _record_model(job: TrainingJob, partial: Path, trained: Trained) -> SegmentationModel:
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    name = f"p{job.project_id}-{SHORT_NAMES[job.kind]}-j{job.pk}"
    final = partial.with_name(f"{name}-{digest[:12]}{trained.suffix}")
    os.replace(partial, final)
    return trained_model_register(project=job.project, name=name, arch=trained.arch, path=final,
                                  sha256=digest, base=trained.base, part=trained.part,
                                  preprocessing=trained.preprocessing)  # fmt: skip


def _figures(
    job: TrainingJob,
    spec: EngineSpec,
    image_ids: list[int],
    start: float,
    share: float,
    *,
    clicks: bool = True,
) -> dict[str, Any]:
    """The validation figures of `spec`; without `clicks`, its proposals' only."""
    engine = engine_for(spec, decoding_only=True, threads=0)
    done = 0

    def image_done() -> None:
        nonlocal done
        done += 1
        if _cancelled(job.pk):
            raise TrainingCancelledError
        TrainingJob.objects.filter(pk=job.pk).update(
            progress=start + share * done / max(len(image_ids), 1)
        )

    figures = validation_figures(
        engine, list(validation_images(job.project, image_ids, spec)), image_done=image_done,
        max_objects=MAX_OBJECTS if clicks else 0,
    )  # fmt: skip
    if not clicks:
        figures = {k: v for k, v in figures.items() if k.startswith("proposal")}
    return {"model": spec.name, **figures}


def _record_version(
    job: TrainingJob,
    model: SegmentationModel,
    base: EngineSpec,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    improved = better(after, before, job.kind)
    with transaction.atomic():
        project = type(job.project).objects.select_for_update().get(pk=job.project_id)
        if _cancelled(job.pk):
            raise TrainingCancelledError
        number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"]
                  or 0) + 1  # fmt: skip
        version = ModelVersion.objects.create(
            project=project, number=number, kind=job.kind, model=model, job=job,
            base_model=base.name, figures=after, before=before, better=improved,
        )  # fmt: skip
    if improved and job.created_by is not None:
        try:
            version_adopt(version=version, user=job.created_by)
        except ServiceError as exc:  # its maker is no longer an owner
            logger.info("version %s not adopted: %s", version.pk, exc)
