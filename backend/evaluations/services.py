"""Evaluating an engine on a project: the simulated annotator (see
worker/evaluation.py) run over the project's accepted instances.

The accepted instances are the project's curated ground truth. Each image's
embedding comes from the embedding store when the worker already made it;
otherwise it is computed here, in this process, through the same
`embedding_compute` the worker runs, so the store and the Embedding row end
up exactly as if the worker had done it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import groupby

from django.contrib.auth.models import AbstractBaseUser

from backend.annotations.models import Instance
from backend.annotations.selectors import accepted_instances
from backend.common.errors import ServiceError
from backend.evaluations.models import EngineEvaluation
from backend.projects.models import Project
from backend.segmentation.compute import embedding_complete
from backend.segmentation.engines import engine_for
from worker import rle
from worker.engines.spec import EngineSpec
from worker.evaluation import MAX_CLICKS, NOC_THRESHOLDS, ObjectTrace, simulate_object, summarize

Progress = Callable[[str], None]


def engine_evaluate(
    *,
    project: Project,
    spec: EngineSpec,
    max_objects: int | None = None,
    max_clicks: int = MAX_CLICKS,
    user: AbstractBaseUser | None = None,
    progress: Progress | None = None,
) -> EngineEvaluation:
    """Simulate an annotator on up to `max_objects` accepted instances (oldest
    first) with `spec`'s engine and record the metrics.

    Not one transaction: embeddings may take minutes to compute, and each is
    recorded as soon as it is made. Raises ServiceError when there is nothing
    to evaluate or an embedding cannot be computed.
    """
    if max_objects is not None and max_objects < 1:
        raise ServiceError("max_objects must be at least 1.")
    if max_clicks < 1:
        raise ServiceError("max_clicks must be at least 1.")
    started = time.monotonic()
    instances = _instances(project=project, max_objects=max_objects)
    if not instances:
        raise ServiceError(f"Project {project.pk} has no accepted instances to evaluate.")
    traces: list[ObjectTrace] = []
    images = computed = 0
    for _, group in groupby(instances, key=lambda i: i.image_id):
        objects = list(group)
        image = objects[0].image
        embedding, was_computed = embedding_complete(image=image, spec=spec)
        images, computed = images + 1, computed + int(was_computed)
        # After an embedding was computed here the registry holds the full
        # engine; asking after it reuses that rather than loading a decoder.
        engine = engine_for(spec, decoding_only=True, threads=0)
        for instance in objects:
            # Stopping at the highest NoC threshold changes no metric (see simulate_object).
            traces.append(
                simulate_object(
                    engine,
                    embedding,
                    rle.decode(instance.rle),
                    max_clicks,
                    stop_iou=max(NOC_THRESHOLDS),
                )
            )
        if progress is not None:
            progress(f"image {image.pk} ({image.name}): {len(objects)} objects")
    metrics = summarize(traces)
    metrics.update(
        images=images,
        embedded_images=computed,
        max_clicks=max_clicks,
        seconds=round(time.monotonic() - started, 3),
    )
    return EngineEvaluation.objects.create(
        project=project,
        model_name=spec.name,
        engine_key=spec.key,
        metrics=metrics,
        object_count=len(traces),
        created_by=user,
    )


def _instances(*, project: Project, max_objects: int | None) -> list[Instance]:
    """Accepted instances by id, so that a limit always picks the same ones,
    grouped by image so that each embedding is loaded once."""
    queryset = accepted_instances(project=project).select_related("image", "image__project")
    chosen = list(queryset[:max_objects] if max_objects is not None else queryset)
    return sorted(chosen, key=lambda i: (i.image_id, i.pk))
