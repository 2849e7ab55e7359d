"""Models trained for one project (backend/training asks for these writes):
register a trained model's file under the project, and discard one with
its embeddings and file."""

from __future__ import annotations

from pathlib import Path

import torch
from django.db import transaction
from django.db.models import Q
from safetensors.torch import load_file

from backend.projects.models import Project
from backend.segmentation.embeddings import embedding_files_delete
from backend.segmentation.models import Embedding, SegmentationModel
from backend.segmentation.selectors import spec_for_model
from worker.engines.sam import loading as sam_loading
from worker.engines.sam.decoder.onnx import graph_paths, onnx_path_for
from worker.engines.spec import EngineSpec


def trained_model_register(
    *,
    project: Project,
    name: str,
    arch: str,
    path: Path,
    sha256: str,
    base: EngineSpec | None = None,
    part: str = "decoder",
    preprocessing: str = "sam",
) -> SegmentationModel:
    """A trained model's file (`path`, hashed `sha256`) as a model of the
    project. With `base`, the file is a `part` ("decoder" or "detector") of
    that SAM model: the new model is the base with this part replaced, and
    decodes the base's embeddings (and keeps its preprocessing)."""
    if base is None:
        return SegmentationModel.objects.create(
            project=project, name=name, arch=arch, checkpoint_path=str(path), sha256=sha256,
            preprocessing=preprocessing,
        )  # fmt: skip
    if part not in ("decoder", "detector"):
        raise ValueError(f"no trained part {part!r}")
    parts = {"decoder_path": base.decoder_path, "detector_path": base.detector_path}
    parts[f"{part}_path"] = str(path)
    return SegmentationModel.objects.create(
        project=project, name=name, arch=base.arch, checkpoint_path=base.checkpoint_path,
        sha256=sha256, embeddings_of=base.embedding_key, preprocessing=base.preprocessing,
        **parts,
    )  # fmt: skip


def own_file(model: SegmentationModel) -> Path:
    """The file a trained model brought: of its paths (a trained part, or a
    whole checkpoint), the one named by its sha256 (backend/training/run.py
    names each file so); the others belong to the models it was trained from."""
    paths = [p for p in (model.detector_path, model.decoder_path, model.checkpoint_path) if p]
    for path in paths:
        if model.sha256 and model.sha256[:12] in Path(path).name:
            return Path(path)
    return Path(model.checkpoint_path)


def _made_official(model: SegmentationModel, own: Path) -> bool:
    """Whether the download is an official `.pth` made from the model's own
    file: an adapted decoder's, or a whole LoRA-adapted model's safetensors."""
    return str(own) == model.decoder_path or (
        str(own) == model.checkpoint_path and own.suffix == ".safetensors"
    )


def trained_checkpoint_file(*, model: SegmentationModel) -> Path:
    """The file to download: the model's own (a pixel classifier, a box
    detector's safetensors), or in the official SAM layout (a state dict for
    `torch.load`, made once) for an adapted decoder its base checkpoint with
    the adapted prompt encoder and mask decoder, and for a LoRA-adapted
    model its merged weights."""
    own = own_file(model)
    if not _made_official(model, own):
        return own
    merged = own.with_suffix(".pth")
    if not merged.exists():
        state = sam_loading.read_state_dict(model.checkpoint_path)
        if str(own) == model.decoder_path:
            state.update(load_file(model.decoder_path))
        partial = merged.with_suffix(".part")
        torch.save(state, partial)
        partial.replace(merged)
    return merged


def _decoder_shared(decoder_key: str, project_id: int) -> bool:
    """Whether a model still decodes with these weights (their ONNX export
    stays): one installed for everyone, or another of the project's."""
    candidates = SegmentationModel.objects.filter(Q(project=None) | Q(project_id=project_id))
    return any(spec_for_model(m).decoder_key == decoder_key for m in candidates)


def trained_model_discard(*, model: SegmentationModel) -> None:
    """Delete a trained model, the embeddings made with it, its own file and
    its decoder's ONNX export unless another model decodes with it (once the
    transaction commits)."""
    if model.project_id is None:
        raise ValueError(f"{model.name} is installed for everyone, not trained for a project")
    spec = spec_for_model(model)
    # A trained part's embeddings are its base model's: they stay.
    embeddings = Embedding.objects.filter(engine_key=spec.key if not spec.embeddings_of else "")
    stored = list(embeddings.values_list("engine_key", "image_id"))
    embeddings.delete()
    own = own_file(model)
    paths = [own, own.with_suffix(".pth")] if _made_official(model, own) else [own]
    model.delete()
    if spec.is_sam and not _decoder_shared(spec.decoder_key, model.project_id):
        folder = Path(spec.checkpoint_path).parent
        paths += graph_paths(onnx_path_for(folder, spec.decoder_key))
    transaction.on_commit(lambda: embedding_files_delete(stored))
    for path in paths:
        transaction.on_commit(lambda path=path: path.unlink(missing_ok=True))
