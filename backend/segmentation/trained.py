"""Models trained for one project (backend/training asks for these writes):
register a trained model's file under the project, and discard one with
its embeddings and file."""

from __future__ import annotations

from pathlib import Path

import torch
from django.db import transaction
from safetensors.torch import load_file

from backend.projects.models import Project
from backend.segmentation.embeddings import embedding_files_delete
from backend.segmentation.models import Embedding, SegmentationModel
from backend.segmentation.selectors import spec_for_model
from worker.engines.sam import loading as sam_loading
from worker.engines.spec import EngineSpec


def trained_model_register(
    *,
    project: Project,
    name: str,
    arch: str,
    path: Path,
    sha256: str,
    base: EngineSpec | None = None,
) -> SegmentationModel:
    """A trained model's file (`path`, hashed `sha256`) as a model of the
    project. With `base`, the file is an adapted decoder of that SAM model:
    it loads the base's checkpoint, then the decoder, and decodes the base's
    embeddings."""
    if base is None:
        return SegmentationModel.objects.create(
            project=project, name=name, arch=arch, checkpoint_path=str(path), sha256=sha256
        )
    return SegmentationModel.objects.create(
        project=project, name=name, arch=base.arch, checkpoint_path=base.checkpoint_path,
        sha256=sha256, decoder_path=str(path), embeddings_of=base.embedding_key,
    )  # fmt: skip


def trained_checkpoint_file(*, model: SegmentationModel) -> Path:
    """The file to download: the model's own, or for an adapted decoder its
    base checkpoint with the adapted prompt encoder and mask decoder, in the
    official SAM layout (a state dict for `torch.load`), made once."""
    if not model.decoder_path:
        return Path(model.checkpoint_path)
    merged = Path(model.decoder_path).with_suffix(".pth")
    if not merged.exists():
        state = sam_loading.read_state_dict(model.checkpoint_path)
        state.update(load_file(model.decoder_path))
        partial = merged.with_suffix(".part")
        torch.save(state, partial)
        partial.replace(merged)
    return merged


def trained_model_discard(*, model: SegmentationModel) -> None:
    """Delete a trained model, the embeddings made with it and its file (once
    the transaction commits)."""
    if model.project_id is None:
        raise ValueError(f"{model.name} is installed for everyone, not trained for a project")
    spec = spec_for_model(model)
    # An adapted decoder's embeddings are its base model's: they stay.
    embeddings = Embedding.objects.filter(engine_key=spec.key if not spec.embeddings_of else "")
    stored = list(embeddings.values_list("engine_key", "image_id"))
    embeddings.delete()
    paths = [Path(model.decoder_path or model.checkpoint_path)]
    if model.decoder_path:
        paths.append(Path(model.decoder_path).with_suffix(".pth"))
    model.delete()
    transaction.on_commit(lambda: embedding_files_delete(stored))
    for path in paths:
        transaction.on_commit(lambda path=path: path.unlink(missing_ok=True))
