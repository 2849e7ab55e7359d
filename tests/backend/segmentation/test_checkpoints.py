"""Installing checkpoints (install_model) and fetching the official ones (fetch_model)."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from backend.common.errors import ServiceError
from backend.segmentation import checkpoints as model_services
from backend.segmentation.checkpoints import (
    OfficialCheckpoint,
    model_fetch,
    segmentation_model_install,
)
from backend.segmentation.models import SegmentationModel
from backend.segmentation.selectors import spec_for_model
from tests.tiny_sam import save_tiny_checkpoint
from worker.engines.sam.decoder.onnx import graph_paths, onnx_path_for
from worker.engines.sam.engine import SamEngine

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("upload") / "tiny.pth")


@pytest.fixture(scope="module")
def other_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("upload") / "tiny2.pth", seed=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def models_root_files() -> list[str]:
    root = Path(settings.MODELS_ROOT)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_it_installs_a_checkpoint(tiny: Path) -> None:
    model = segmentation_model_install(name="tiny", arch="custom", checkpoint_path=tiny)
    digest = sha256(tiny)
    assert model.sha256 == digest
    assert SegmentationModel.objects.get(name="tiny").arch == "custom"
    stored = Path(model.checkpoint_path)
    assert stored == Path(settings.MODELS_ROOT) / f"tiny-{digest[:12]}.pth"
    assert sha256(stored) == digest and tiny.exists()  # a copy; the original stays
    spec = spec_for_model(model)
    assert spec.key == f"tiny-{digest[:12]}"
    # The ONNX decoder is exported at install time, beside the checkpoint.
    # The checkpoint and the exported decoder graphs (prompt, image, folded, grid, mask).
    prompt_graph = onnx_path_for(Path(settings.MODELS_ROOT), spec.key)
    expected = sorted([*(p.name for p in graph_paths(prompt_graph)), f"{spec.key}.pth"])
    assert models_root_files() == expected
    assert SamEngine(spec, load_image_encoder=False).backend == "onnx"


def test_it_refuses_a_checkpoint_of_another_arch(tiny: Path) -> None:
    with pytest.raises(ServiceError, match=r"custom ViT .* not vit_b"):
        segmentation_model_install(name="tiny", arch="vit_b", checkpoint_path=tiny)
    assert not SegmentationModel.objects.exists()
    assert models_root_files() == []


def test_it_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    fake = tmp_path / "model.pth"
    fake.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ServiceError, match="not a PyTorch checkpoint"):
        segmentation_model_install(name="fake", arch="vit_b", checkpoint_path=fake)
    assert not SegmentationModel.objects.exists()
    assert models_root_files() == []


@pytest.mark.parametrize(
    ("name", "arch", "path", "message"),
    [
        ("bad name!", "custom", None, "model name"),
        ("classical", "custom", None, "built-in engine"),
        ("tiny", "vit_x", None, "Unknown arch"),
        ("tiny", "custom", "missing.pth", "does not exist"),
    ],
)
def test_it_explains_bad_input(
    tiny: Path, tmp_path: Path, name: str, arch: str, path: str | None, message: str
) -> None:
    checkpoint = tmp_path / path if path else tiny
    with pytest.raises(ServiceError, match=message):
        segmentation_model_install(name=name, arch=arch, checkpoint_path=checkpoint)


def test_installing_a_name_again_replaces_its_checkpoint(
    tiny: Path, other_tiny: Path, django_capture_on_commit_callbacks: Any
) -> None:
    first = segmentation_model_install(name="tiny", arch="custom", checkpoint_path=tiny)
    # The checkpoint and every ONNX decoder graph.
    assert len(models_root_files()) == 1 + len(graph_paths(Path("decoder.onnx")))
    old_key, old_path = spec_for_model(first).key, Path(first.checkpoint_path)
    with django_capture_on_commit_callbacks(execute=True):
        second = segmentation_model_install(
            name="tiny", arch="custom", checkpoint_path=other_tiny, prepare_decoder=False
        )
    assert second.pk == first.pk and second.sha256 == sha256(other_tiny)
    assert spec_for_model(second).key != old_key
    assert not old_path.exists()  # the replaced copy and its decoder are removed
    assert models_root_files() == [Path(second.checkpoint_path).name]
    # The same file again changes nothing.
    again = segmentation_model_install(
        name="tiny", arch="custom", checkpoint_path=other_tiny, prepare_decoder=False
    )
    assert again.sha256 == second.sha256 and again.checkpoint_path == second.checkpoint_path


def test_the_install_model_command(tiny: Path) -> None:
    out = io.StringIO()
    call_command("install_model", "tiny", "--arch", "custom", "--checkpoint", str(tiny), stdout=out)
    assert "Installed tiny (custom" in out.getvalue()
    assert SegmentationModel.objects.filter(name="tiny").exists()
    with pytest.raises(CommandError, match="not vit_h"):
        call_command("install_model", "tiny2", "--arch", "vit_h", "--checkpoint", str(tiny))


def test_a_model_installed_with_medsams_preprocessing_keeps_it(tiny: Path) -> None:
    with pytest.raises(CommandError, match="cannot be installed as vit_b"):  # medsam is vit_b's
        call_command("install_model", "med", "--arch", "medsam", "--checkpoint", str(tiny))
    out = io.StringIO()
    call_command("install_model", "med", "--arch", "custom", "--preprocessing", "medsam",
                 "--checkpoint", str(tiny), stdout=out)  # fmt: skip
    model = SegmentationModel.objects.get(name="med")
    assert (model.arch, model.preprocessing) == ("custom", "medsam")
    spec = spec_for_model(model)
    assert spec.preprocessing == "medsam" and spec.key.endswith("-medsam")
    assert "medsam preprocessing" in out.getvalue() and spec.key in out.getvalue()
    with pytest.raises(ServiceError, match="Unknown preprocessing 'medsam2'"):
        segmentation_model_install(name="med", arch="custom", checkpoint_path=tiny,
                                   preprocessing="medsam2")  # fmt: skip


def test_fetch_model_fails_fast_without_a_network() -> None:
    started = time.monotonic()
    with pytest.raises(CommandError, match=r"Could not download .*sam_vit_b_01ec64\.pth") as caught:
        call_command("fetch_model", "vit_b", "--timeout", "3")
    assert time.monotonic() - started < 15
    assert "install_model" in str(caught.value)  # says what to do instead
    assert not list((Path(settings.MODELS_ROOT) / "downloads").glob("*"))


def fake_official(tmp_path: Path, payload: bytes, *, sha: str | None = None) -> OfficialCheckpoint:
    """An 'official' checkpoint served from a file:// URL, named like the real ones."""
    md5 = hashlib.md5(payload).hexdigest()
    served = tmp_path / "served" / f"sam_vit_b_{md5[:6]}.pth"
    served.parent.mkdir()
    served.write_bytes(payload)
    return OfficialCheckpoint("vit_b", served.as_uri(), sha or hashlib.sha256(payload).hexdigest())


def test_fetch_verifies_the_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"weights" * 1000
    official = fake_official(tmp_path, payload)
    monkeypatch.setitem(model_services.OFFICIAL_CHECKPOINTS, "vit_b", official)
    path = model_fetch(arch="vit_b", dest_dir=tmp_path / "dl", progress=False)
    assert path.read_bytes() == payload and path.name == official.filename
    assert not list(path.parent.glob("*.part"))


def test_fetch_refuses_a_corrupt_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    official = fake_official(tmp_path, b"truncated", sha="0" * 64)
    monkeypatch.setitem(model_services.OFFICIAL_CHECKPOINTS, "vit_b", official)
    with pytest.raises(ServiceError, match="corrupt"):
        model_fetch(arch="vit_b", dest_dir=tmp_path / "dl", progress=False)
    assert not list((tmp_path / "dl").glob("*"))


def test_the_official_names_carry_an_md5_prefix() -> None:
    prefixes = {a: c.md5_prefix for a, c in model_services.OFFICIAL_CHECKPOINTS.items()}
    assert prefixes == {"vit_b": "01ec64", "vit_l": "0b3195", "vit_h": "4b8939"}


@pytest.mark.slow
def test_a_full_size_vit_b_installs(tmp_path: Path) -> None:
    from segment_anything import sam_model_registry

    checkpoint = tmp_path / "sam_vit_b_random.pth"
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), checkpoint)
    with pytest.raises(CommandError, match="checkpoint is a vit_b, not vit_l"):
        call_command("install_model", "big", "--arch", "vit_l", "--checkpoint", str(checkpoint))
    assert models_root_files() == []
    out = io.StringIO()
    call_command(
        "install_model", "big", "--arch", "vit_b", "--checkpoint", str(checkpoint), stdout=out
    )
    model = SegmentationModel.objects.get(name="big")
    assert model.arch == "vit_b" and model.sha256 == sha256(checkpoint)
    assert model.preprocessing == "sam"
    call_command("install_model", "medsam", "--arch", "medsam", "--checkpoint", str(checkpoint))
    medsam = SegmentationModel.objects.get(name="medsam")
    assert (medsam.arch, medsam.preprocessing) == ("vit_b", "medsam")
    assert Path(model.checkpoint_path).stat().st_size == checkpoint.stat().st_size
