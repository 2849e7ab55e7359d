"""Writes for segmentation models: installing checkpoints and fetching the official ones.

An installed checkpoint is copied into settings.MODELS_ROOT as
`<name>-<sha256[:12]>.pth`: the file the engine loads can then never change
under its engine key (a user's original may be edited or deleted later), and
a new checkpoint under the same name gets a new key, so no embedding made by
the old weights is ever reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from backend.common.errors import ServiceError
from backend.segmentation.models import SegmentationModel
from worker.engines.sam import loading as sam_loading
from worker.engines.sam.preprocessing import FAMILIES, PREPROCESSINGS, SAM
from worker.engines.spec import CLASSICAL, EngineSpec

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class OfficialCheckpoint:
    """A checkpoint published with segment-anything.

    The 6-hex suffix of the file name is the start of the file's MD5; the
    full SHA-256 is what maskroom records and checks.
    """

    arch: str
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def md5_prefix(self) -> str:
        return self.filename.rsplit("_", 1)[-1].removesuffix(".pth")


_BASE = "https://dl.fbaipublicfiles.com/segment_anything/"
OFFICIAL_CHECKPOINTS = {
    c.arch: c
    for c in (
        OfficialCheckpoint(
            "vit_b",
            _BASE + "sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        ),
        OfficialCheckpoint(
            "vit_l",
            _BASE + "sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        ),
        OfficialCheckpoint(
            "vit_h",
            _BASE + "sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        ),
    )
}


def segmentation_model_install(
    *,
    name: str,
    arch: str,
    checkpoint_path: Path,
    move: bool = False,
    prepare_decoder: bool = True,
    preprocessing: str | None = None,
) -> SegmentationModel:
    """Check a SAM checkpoint, copy it into MODELS_ROOT and register it as `name`.

    Nothing is written unless the file loads strictly into `arch` ("vit_b",
    "vit_l", "vit_h", or "custom": any SAM ViT encoder, see
    worker/engines/sam/loading.py). Installing an existing name again
    replaces its checkpoint; a different file gives it a new engine key.
    `move=True` moves the file instead of copying it (for downloads).
    `prepare_decoder` exports the ONNX decoder now, so that the first click
    after an install does not wait for it. A family's name as `arch`
    ("medsam") is its layout with its preprocessing; `preprocessing` ("sam",
    the default, or "medsam") gives one to any arch
    (worker/engines/sam/preprocessing.py).
    """
    _check_name(name)
    arch, preprocessing = _family(arch, preprocessing)
    if arch not in sam_loading.SAM_ARCHS:
        raise ServiceError(
            f"Unknown arch {arch!r}: choose one of {', '.join(sam_loading.SAM_ARCHS)}."
        )
    source = Path(checkpoint_path).expanduser()
    if not source.is_file():
        raise ServiceError(f"Checkpoint {source} does not exist or is not a file.")
    sha256 = file_sha256(source)
    try:
        sam_loading.load_sam(source, arch)  # strict: every tensor, every shape
    except sam_loading.CheckpointError as exc:
        raise ServiceError(f"{source.name} cannot be installed as {arch}: {exc}.") from exc
    stored = _store(source, Path(settings.MODELS_ROOT) / f"{name}-{sha256[:12]}.pth", move=move)
    model = _register(name=name, arch=arch, path=stored, sha256=sha256, preprocessing=preprocessing)
    if prepare_decoder:
        _prepare_decoder(model)
    return model


def _prepare_decoder(model: SegmentationModel) -> None:
    """Export (and cache) the ONNX decoder; a failure only means torch decodes."""
    # Here, not at the top: installing the classical engine needs no torch.
    from worker.engines.sam.engine import SamEngine

    spec = EngineSpec(
        name=model.name, arch=model.arch, checkpoint_path=model.checkpoint_path,
        sha256=model.sha256, preprocessing=model.preprocessing,
    )  # fmt: skip
    try:
        SamEngine(spec, load_image_encoder=False, backend="onnx")
    except Exception:
        logger.warning("Could not prepare the ONNX decoder of %s", spec.key, exc_info=True)


def _family(arch: str, preprocessing: str | None) -> tuple[str, str]:
    """(arch, preprocessing) of what the user named; ServiceError if unknown."""
    if arch in FAMILIES:
        family_arch, family_preprocessing = FAMILIES[arch]
        if preprocessing not in (None, family_preprocessing):
            raise ServiceError(
                f"{arch} uses {family_preprocessing} preprocessing, not {preprocessing}."
            )
        return family_arch, family_preprocessing
    if preprocessing is not None and preprocessing not in PREPROCESSINGS:
        raise ServiceError(
            f"Unknown preprocessing {preprocessing!r}: choose one of {', '.join(PREPROCESSINGS)}."
        )
    return arch, preprocessing or SAM


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise ServiceError(
            "A model name is 1 to 64 letters, digits, '-' or '_', starting with a letter or digit."
        )
    if name == CLASSICAL:
        raise ServiceError(f"{CLASSICAL!r} names the built-in engine; choose another name.")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _store(source: Path, dest: Path, *, move: bool) -> Path:
    """Put the checkpoint at `dest` atomically; a file already there has the same bytes."""
    if dest.exists() or source.resolve() == dest.resolve():
        if move and source.resolve() != dest.resolve():
            source.unlink()
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if move:
        try:
            os.replace(source, dest)
            return dest
        except OSError:  # another file system: copy instead
            pass
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, dest)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    if move:
        source.unlink()
    return dest


def _register(
    *, name: str, arch: str, path: Path, sha256: str, preprocessing: str = SAM
) -> SegmentationModel:
    with transaction.atomic():
        model = SegmentationModel.objects.select_for_update().filter(name=name).first()
        if model is None:
            return SegmentationModel.objects.create(
                name=name, arch=arch, checkpoint_path=str(path), sha256=sha256,
                preprocessing=preprocessing,
            )  # fmt: skip
        old_path = model.checkpoint_path
        model.arch, model.checkpoint_path, model.sha256 = arch, str(path), sha256
        model.preprocessing = preprocessing
        model.save(update_fields=["arch", "checkpoint_path", "sha256", "preprocessing"])
        if old_path and old_path != str(path):
            transaction.on_commit(lambda: _remove_unused_checkpoint(Path(old_path)))
        return model


def _remove_unused_checkpoint(path: Path) -> None:
    """Delete a replaced checkpoint (and its exported decoders) if it is ours and unused."""
    root = Path(settings.MODELS_ROOT).resolve()
    if path.resolve().parent != root:
        return
    if SegmentationModel.objects.filter(checkpoint_path=str(path)).exists():
        return
    path.unlink(missing_ok=True)
    for exported in root.glob(f"{path.stem}.decoder-*.onnx"):
        exported.unlink(missing_ok=True)


def model_fetch(*, arch: str, dest_dir: Path, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download the official `arch` checkpoint into `dest_dir` and verify it.

    The download goes to a `.part` file that is renamed only once its
    SHA-256 (and the MD5 prefix in its name) match. A verified file already
    there is reused.
    """
    official = OFFICIAL_CHECKPOINTS.get(arch)
    if official is None:
        raise ServiceError(
            f"No official checkpoint for {arch!r}: choose one of {', '.join(OFFICIAL_CHECKPOINTS)}."
        )
    dest_dir = Path(dest_dir)
    final = dest_dir / official.filename
    if final.is_file() and file_sha256(final) == official.sha256:
        return final
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    try:
        sha256, md5 = _download(official.url, part, timeout=timeout, progress=progress)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise ServiceError(
            f"Could not download {official.url}: {reason}. Download it where the network "
            f"allows, then run: python manage.py install_model NAME --arch {arch} "
            f"--checkpoint PATH"
        ) from None
    if sha256 != official.sha256 or not md5.startswith(official.md5_prefix):
        part.unlink(missing_ok=True)
        raise ServiceError(
            f"The download of {official.filename} is corrupt (SHA-256 {sha256}, expected "
            f"{official.sha256}); try again."
        )
    os.replace(part, final)
    return final


def _download(url: str, part: Path, *, timeout: float, progress: bool) -> tuple[str, str]:
    from tqdm import tqdm

    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
            file=sys.stderr,
        ) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                sha256.update(chunk)
                md5.update(chunk)
                bar.update(len(chunk))
    return sha256.hexdigest(), md5.hexdigest()
