"""The body of an evaluation job (Celery task `evaluations.run`): the
model's figures on the project's validation images (or every curated one)
against their curated instances, as a training job measures them."""

from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone

from backend.annotations.selectors import accepted_instances
from backend.common.errors import ServiceError
from backend.datasets.holdout import validation_split
from backend.evaluations.data import validation_images
from backend.evaluations.models import EngineEvaluation
from backend.segmentation.engines import engine_for
from backend.segmentation.selectors import engine_spec_for_key
from worker.training.validation import validation_figures

logger = logging.getLogger(__name__)


def evaluation_run(*, evaluation_id: int) -> None:
    evaluation = _claim(evaluation_id)
    if evaluation is None:
        return
    started = time.monotonic()
    try:
        metrics = _measure(evaluation)
    except ServiceError as exc:
        _finish(evaluation_id, status=EngineEvaluation.Status.FAILED, error=exc.message)
        return
    except Exception as exc:
        logger.exception("evaluation %s failed", evaluation_id)
        _finish(evaluation_id, status=EngineEvaluation.Status.FAILED,
                error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        return
    metrics["seconds"] = round(time.monotonic() - started, 3)
    EngineEvaluation.objects.filter(pk=evaluation_id).update(
        metrics=metrics, object_count=metrics.get("objects") or 0, progress=1.0
    )
    _finish(evaluation_id, status=EngineEvaluation.Status.DONE, error="")


def _claim(evaluation_id: int) -> EngineEvaluation | None:
    with transaction.atomic():
        evaluation = (
            EngineEvaluation.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(pk=evaluation_id, status=EngineEvaluation.Status.QUEUED)
            .first()
        )
        if evaluation is None:
            return None
        evaluation.status = EngineEvaluation.Status.RUNNING
        evaluation.save(update_fields=["status"])
    return evaluation


def _finish(evaluation_id: int, *, status: str, error: str) -> None:
    EngineEvaluation.objects.filter(pk=evaluation_id).update(
        status=status, error=error[:4000], finished_at=timezone.now()
    )


def _measure(evaluation: EngineEvaluation) -> dict[str, object]:
    project = evaluation.project
    spec = engine_spec_for_key(evaluation.engine_key)
    if spec is None:
        raise ServiceError(f"The model {evaluation.model_name} was removed meanwhile.")
    if evaluation.split == EngineEvaluation.Split.VALIDATION:
        image_ids = validation_split(project=project).val
    else:
        image_ids = sorted(
            set(accepted_instances(project=project).values_list("image_id", flat=True))
        )
        if not image_ids:
            raise ServiceError("The project has no curated instances to evaluate on.")
    engine = engine_for(spec, decoding_only=True, threads=0)
    done = 0

    def image_done() -> None:
        nonlocal done
        done += 1
        EngineEvaluation.objects.filter(pk=evaluation.pk).update(progress=done / len(image_ids))

    images = validation_images(project, image_ids, spec)
    return validation_figures(engine, list(images), image_done=image_done)
