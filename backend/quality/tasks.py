"""Celery task for an image's consensus: takes the image's id, calls run.py."""

from __future__ import annotations

from backend.images.models import Image
from backend.quality.run import consensus_if_complete
from worker.celery_app import app


@app.task(name="quality.consensus_image")
def consensus_image(image_id: int) -> None:
    image = Image.objects.select_related("project").filter(pk=image_id).first()
    if image is not None:
        consensus_if_complete(image=image)
