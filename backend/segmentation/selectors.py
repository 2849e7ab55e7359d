"""Reads for segmentation: which engine is active, and embedding states."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q, QuerySet

from backend.images.models import Image
from backend.projects.models import Project
from backend.segmentation.models import Embedding, SegmentationModel
from worker.engines.spec import CLASSICAL, CLASSICAL_SPEC, EngineSpec


def spec_for_model(model: SegmentationModel) -> EngineSpec:
    return EngineSpec(
        name=model.name,
        arch=model.arch,
        checkpoint_path=model.checkpoint_path,
        sha256=model.sha256,
        decoder_path=model.decoder_path,
        embeddings_of=model.embeddings_of,
        detector_path=model.detector_path,
        preprocessing=model.preprocessing,
    )


def default_engine_spec() -> EngineSpec:
    """DEFAULT_MODEL if set, else the newest installed SAM model, else classical."""
    if settings.DEFAULT_MODEL:
        model = SegmentationModel.objects.filter(name=settings.DEFAULT_MODEL).first()
        if model is not None:
            return spec_for_model(model)
    model = (
        SegmentationModel.objects.filter(project=None)
        .exclude(arch=SegmentationModel.Arch.CLASSICAL)
        .order_by("-created_at", "-id")
        .first()
    )
    return spec_for_model(model) if model is not None else CLASSICAL_SPEC


def models_for(project: Project | None) -> QuerySet[SegmentationModel]:
    """The models installed for everyone, and those trained for `project`."""
    return SegmentationModel.objects.filter(Q(project=None) | Q(project=project))


def engine_spec_named(name: str, project: Project | None = None) -> EngineSpec | None:
    """The installed SegmentationModel called `name` (one installed for all,
    or trained for `project`), or the built-in "classical"."""
    model = models_for(project).filter(name=name).first()
    if model is not None:
        return spec_for_model(model)
    return CLASSICAL_SPEC if name == CLASSICAL else None


def installed_model_names(project: Project | None = None) -> list[str]:
    names = list(models_for(project).order_by("name").values_list("name", flat=True))
    return names if CLASSICAL in names else [*names, CLASSICAL]


def engine_spec_for_project(project: Project) -> EngineSpec:
    """The project's chosen model; the instance default when none is chosen
    or the chosen one was uninstalled."""
    if project.model_name:
        spec = engine_spec_named(project.model_name, project)
        if spec is not None:
            return spec
    return default_engine_spec()


def embedding_for_image(*, image: Image, spec: EngineSpec | None = None) -> Embedding | None:
    spec = spec or engine_spec_for_project(image.project)
    return Embedding.objects.filter(image=image, engine_key=spec.embedding_key).first()


def embedding_status(*, image: Image) -> str:
    """pending, running, ready or failed for the project's active engine."""
    embedding = embedding_for_image(image=image)
    return embedding.status if embedding is not None else Embedding.Status.PENDING


def embedding_statuses(*, project: Project, image_ids: list[int]) -> dict[int, str]:
    """embedding_status of many images of one project, in two queries."""
    spec = engine_spec_for_project(project)
    found = dict(
        Embedding.objects.filter(image_id__in=image_ids, engine_key=spec.embedding_key).values_list(
            "image_id", "status"
        )
    )
    return {pk: found.get(pk, Embedding.Status.PENDING) for pk in image_ids}


def engine_spec_for_key(engine_key: str) -> EngineSpec | None:
    """The spec whose key is `engine_key`, if that model is still installed."""
    if engine_key == CLASSICAL_SPEC.key:
        return CLASSICAL_SPEC
    for model in SegmentationModel.objects.all():
        spec = spec_for_model(model)
        if spec.key == engine_key:
            return spec
    return None
