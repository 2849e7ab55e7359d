"""Models trained for one project (backend/training asks for these writes):
register a trained model's file under the project, and discard one with
its embeddings and file."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from backend.projects.models import Project
from backend.segmentation.embeddings import embedding_files_delete
from backend.segmentation.models import Embedding, SegmentationModel
from backend.segmentation.selectors import spec_for_model


def trained_model_register(
    *, project: Project, name: str, arch: str, path: Path, sha256: str
) -> SegmentationModel:
    return SegmentationModel.objects.create(
        project=project, name=name, arch=arch, checkpoint_path=str(path), sha256=sha256
    )


def trained_model_discard(*, model: SegmentationModel) -> None:
    """Delete a trained model, the embeddings made with it and its file (once
    the transaction commits)."""
    if model.project_id is None:
        raise ValueError(f"{model.name} is installed for everyone, not trained for a project")
    key = spec_for_model(model).key
    embeddings = Embedding.objects.filter(engine_key=key)
    stored = list(embeddings.values_list("engine_key", "image_id"))
    embeddings.delete()
    path = Path(model.checkpoint_path)
    model.delete()
    transaction.on_commit(lambda: embedding_files_delete(stored))
    transaction.on_commit(lambda: path.unlink(missing_ok=True))
