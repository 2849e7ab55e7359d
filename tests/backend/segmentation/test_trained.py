"""Trained parts stack: a decoder adapted after a detector keeps the
detector, a detector trained after an adapted decoder keeps the decoder,
both decode the base's embeddings, and versions that decode alike share one
ONNX export; discarding a version deletes its own file (and its decoder's
export when no other model decodes with it), never the parts it shares
with the versions it was trained from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from backend.projects.models import Project
from backend.segmentation.models import SegmentationModel
from backend.segmentation.selectors import spec_for_model
from backend.segmentation.trained import own_file, trained_model_discard, trained_model_register
from tests.backend.training.conftest import install_tiny_sam
from worker.engines.sam.decoder.onnx import graph_paths, onnx_path_for
from worker.engines.spec import EngineSpec

pytestmark = pytest.mark.django_db

Capture = Callable[..., AbstractContextManager[Any]]


def _trained_file(name: str, content: bytes) -> tuple[Path, str]:
    """A trained part's file, named as backend/training/run.py names them."""
    digest = hashlib.sha256(content).hexdigest()
    path = Path(settings.MODELS_ROOT) / f"{name}-{digest[:12]}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path, digest


def _part(project: Project, base: EngineSpec, part: str, name: str) -> SegmentationModel:
    path, digest = _trained_file(name, name.encode())
    return trained_model_register(project=project, name=name, arch=base.arch, path=path,
                                  sha256=digest, base=base, part=part)  # fmt: skip


def test_a_decoder_after_a_detector_keeps_the_detector_and_the_reverse(project: Project) -> None:
    install_tiny_sam(project)
    base = spec_for_model(SegmentationModel.objects.get(name="tiny"))

    detector = spec_for_model(_part(project, base, "detector", "p-detector-j1"))
    on_top = spec_for_model(_part(project, detector, "decoder", "p-decoder-j2"))
    assert on_top.detector_path == detector.detector_path != ""
    assert on_top.decoder_path.endswith(".safetensors") and detector.decoder_path == ""
    assert on_top.checkpoint_path == base.checkpoint_path
    assert on_top.embedding_key == detector.embedding_key == base.key

    decoder = spec_for_model(_part(project, base, "decoder", "p-decoder-j3"))
    reverse = spec_for_model(_part(project, decoder, "detector", "p-detector-j4"))
    assert reverse.decoder_path == decoder.decoder_path != ""
    assert reverse.detector_path.endswith(".safetensors") and decoder.detector_path == ""
    assert reverse.embedding_key == base.key
    # Versions that decode alike share one ONNX export; a new decoder makes its own.
    assert detector.decoder_key == base.key == base.decoder_key
    assert reverse.decoder_key == decoder.decoder_key not in (base.key, on_top.decoder_key)


def test_discarding_a_version_deletes_only_its_own_file(
    project: Project, django_capture_on_commit_callbacks: Capture
) -> None:
    install_tiny_sam(project)
    base_model = SegmentationModel.objects.get(name="tiny")
    base = spec_for_model(base_model)
    decoder_model = _part(project, base, "decoder", "p-decoder-j1")
    decoder = spec_for_model(decoder_model)
    official = Path(decoder.decoder_path).with_suffix(".pth")  # its download, made once
    official.write_bytes(b"official layout")
    detector_model = _part(project, decoder, "detector", "p-detector-j2")
    folder = Path(base.checkpoint_path).parent
    exports = {key: graph_paths(onnx_path_for(folder, key))
               for key in (base.decoder_key, decoder.decoder_key)}  # fmt: skip
    for path in exports[base.decoder_key] + exports[decoder.decoder_key]:
        path.write_bytes(b"onnx")
    assert own_file(detector_model) == Path(detector_model.detector_path)
    assert own_file(decoder_model) == Path(decoder.decoder_path)

    with django_capture_on_commit_callbacks(execute=True):
        trained_model_discard(model=detector_model)
    assert not Path(detector_model.detector_path).exists()
    assert Path(decoder.decoder_path).exists() and official.exists()  # the decoder's, kept
    assert all(p.exists() for p in exports[decoder.decoder_key])  # the decoder still decodes
    assert Path(base.checkpoint_path).exists()
    assert SegmentationModel.objects.filter(pk=decoder_model.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        trained_model_discard(model=decoder_model)
    assert not Path(decoder.decoder_path).exists() and not official.exists()
    assert not any(p.exists() for p in exports[decoder.decoder_key])
    assert Path(base.checkpoint_path).exists()
    assert all(p.exists() for p in exports[base.decoder_key])
    with pytest.raises(ValueError, match="installed for everyone"):
        trained_model_discard(model=base_model)
