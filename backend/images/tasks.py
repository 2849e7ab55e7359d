"""Celery tasks for images: take ids, call plain functions."""

from __future__ import annotations

from backend.images.pyramid import pyramid_build_for
from backend.images.rendering import displays_render
from worker.celery_app import app


@app.task(name="images.build_pyramid")
def build_pyramid(image_id: int) -> None:
    """Build the image's tile pyramid ahead of its first view."""
    pyramid_build_for(image_id=image_id)


@app.task(name="images.render_displays")
def render_displays(image_ids: list[int]) -> None:
    """Render display PNGs again after the project's channel mapping changed."""
    displays_render(image_ids=image_ids)
