"""Handing a job's id to its Celery task once the transaction commits, and
failing the job with a sentence the user reads when the broker refuses it."""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Model
from django.utils import timezone

logger = logging.getLogger(__name__)


def enqueue_or_fail(task: Any, model: type[Model], job_id: int, *, failed: str) -> None:
    """`task.delay(job_id)`; if the broker is down, the job's row gets
    status `failed`, the reason in `error` and `finished_at` now."""
    try:
        task.delay(job_id)
    except Exception as exc:
        logger.exception("could not enqueue %s %s", model.__name__, job_id)
        model._default_manager.filter(pk=job_id).update(
            status=failed, error=f"The worker queue is down: {exc}", finished_at=timezone.now()
        )
