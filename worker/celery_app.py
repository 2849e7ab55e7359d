"""The Celery application. Tasks live in backend/<app>/tasks.py and call services."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

app = Celery("maskroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
app.autodiscover_tasks(
    [
        "backend.segmentation",
        "backend.images",
        "backend.proposals",
        "backend.propagation",
        "backend.evaluations",
        "backend.quality",
        "backend.datasets",
        "backend.training",
    ]
)
