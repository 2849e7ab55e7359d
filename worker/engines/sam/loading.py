"""Reading SAM checkpoints safely and building segment_anything's modules.

Checkpoints are read with `torch.load(weights_only=True)`: a checkpoint is
data, never code. segment_anything's own `build_sam` loader unpickles
without that guard, so the modules are built here instead, mirroring
segment_anything/build_sam.py.

Archs:
- `vit_b`, `vit_l`, `vit_h`: the official image encoders. A checkpoint must
  match the declared one exactly (fine-tunes in the same layout, e.g. MedSAM's
  medsam_vit_b, qualify).
- `custom`: whatever ViT image encoder the state dict describes (embed dim,
  depth, heads, global-attention blocks and window size are read from the
  tensor shapes). For users' own small fine-tunes and the tiny test models.
  The prompt encoder and mask decoder are SAM's standard ones in every arch.

micro-sam training checkpoints (`{"model_state": {"sam.<key>": ...}, ...}`)
and other wrappers (`state_dict`, `model`, `module.` prefixes) are unwrapped.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from torch import nn

OFFICIAL_ARCHS = ("vit_b", "vit_l", "vit_h")
CUSTOM = "custom"
SAM_ARCHS = (*OFFICIAL_ARCHS, CUSTOM)

PROMPT_EMBED_DIM = 256
IMAGE_SIZE = 1024
EMBEDDING_SHAPE = (256, 64, 64)  # one image's (or tile's) features: C x H x W
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
DECODER_PREFIXES = ("prompt_encoder.", "mask_decoder.")

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot serve as the declared SAM model; the text says why."""


@dataclass(frozen=True)
class EncoderConfig:
    """The shape of a SAM ViT image encoder."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int = 14
    patch_size: int = 16
    img_size: int = IMAGE_SIZE
    mlp_ratio: float = 4.0

    def describe(self) -> str:
        for arch, config in OFFICIAL_CONFIGS.items():
            if config == self:
                return arch
        return (
            f"custom ViT (embed_dim {self.embed_dim}, depth {self.depth}, {self.num_heads} heads)"
        )


OFFICIAL_CONFIGS = {
    "vit_b": EncoderConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": EncoderConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": EncoderConfig(1280, 32, 16, (7, 15, 23, 31)),
}


def read_state_dict(path: Path | str) -> StateDict:
    """Read a checkpoint file as a flat SAM state dict (weights only, on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":  # a project's LoRA-adapted model (worker/training/lora.py)
        try:
            return unwrap_state_dict(load_file(str(path)))
        except SafetensorError as exc:
            raise CheckpointError(
                f"{path.name} is not a readable safetensors file: {exc}"
            ) from None
    try:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # Files in the legacy (pre zip) format cannot be memory-mapped.
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise CheckpointError(_why_unreadable(path, exc)) from None
    return unwrap_state_dict(raw)


def _why_unreadable(path: Path, exc: Exception) -> str:
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if match:
        return (
            f"{path.name} holds Python objects besides weights ({match.group(1)}); "
            "maskroom loads weights only, so save the model's state_dict()"
        )
    return f"{path.name} is not a PyTorch checkpoint (it cannot be read as weights only)"


def unwrap_state_dict(raw: object) -> StateDict:
    """The SAM state dict inside `raw`: plain, or wrapped by micro-sam and trainers."""
    if isinstance(raw, dict):
        for wrapper in ("model_state", "state_dict", "model"):
            inner = raw.get(wrapper)
            if isinstance(inner, dict) and not _looks_like_sam(raw):
                raw = inner
                break
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError("the checkpoint holds no state dict")
    state = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    for prefix in ("module.", "sam.", "model."):
        if not _looks_like_sam(state) and any(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    if not _looks_like_sam(state):
        raise CheckpointError(
            "the checkpoint is not a SAM model: it has no image_encoder/prompt_encoder/"
            "mask_decoder weights"
        )
    # micro-sam stores its instance-segmentation decoder beside SAM; drop extras.
    return {k: v for k, v in state.items() if k.split(".", 1)[0] in _SAM_PARTS}


_SAM_PARTS = ("image_encoder", "prompt_encoder", "mask_decoder")


def _looks_like_sam(state: dict[Any, Any]) -> bool:
    return all(
        any(isinstance(k, str) and k.startswith(part + ".") for k in state) for part in _SAM_PARTS
    )


def infer_encoder_config(state: StateDict) -> EncoderConfig:
    """Read the image encoder's shape from the tensor shapes of a state dict."""
    try:
        patch = state["image_encoder.patch_embed.proj.weight"]
        pos = state["image_encoder.pos_embed"]
        lin1 = state["image_encoder.blocks.0.mlp.lin1.weight"]
    except KeyError as exc:
        raise CheckpointError(f"the checkpoint lacks {exc.args[0]}") from None
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    grid = int(pos.shape[1])
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks."))
    head_dim: int | None = None
    global_blocks: list[int] = []
    window_size = 14
    for i in range(depth):
        rel = state.get(f"image_encoder.blocks.{i}.attn.rel_pos_h")
        if rel is None:
            raise CheckpointError(f"the checkpoint lacks image_encoder.blocks.{i}.attn.rel_pos_h")
        span = (int(rel.shape[0]) + 1) // 2
        head_dim = int(rel.shape[1])
        if span == grid:
            global_blocks.append(i)
        else:
            window_size = span
    assert head_dim is not None
    if head_dim <= 0 or embed_dim % head_dim:
        raise CheckpointError("the checkpoint's attention heads do not divide its embed dim")
    out_chans = state.get("image_encoder.neck.0.weight")
    if out_chans is None or int(out_chans.shape[0]) != PROMPT_EMBED_DIM:
        raise CheckpointError(f"the image encoder must output {PROMPT_EMBED_DIM} channels")
    return EncoderConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=embed_dim // head_dim,
        global_attn_indexes=tuple(global_blocks),
        window_size=window_size,
        patch_size=patch_size,
        img_size=grid * patch_size,
        mlp_ratio=int(lin1.shape[0]) / embed_dim,
    )


def config_for_arch(state: StateDict, arch: str) -> EncoderConfig:
    """The encoder config of `state`, refused unless it is the declared arch."""
    if arch not in SAM_ARCHS:
        raise CheckpointError(f"unknown arch {arch!r}: choose one of {', '.join(SAM_ARCHS)}")
    config = infer_encoder_config(state)
    if config.img_size != IMAGE_SIZE or config.img_size // config.patch_size != 64:
        raise CheckpointError(
            f"the image encoder takes {config.img_size}px inputs in {config.patch_size}px "
            f"patches; maskroom needs {IMAGE_SIZE}px and a 64x64 embedding"
        )
    if arch != CUSTOM and config != OFFICIAL_CONFIGS[arch]:
        raise CheckpointError(f"checkpoint is a {config.describe()}, not {arch}")
    return config


def build_image_encoder(config: EncoderConfig) -> ImageEncoderViT:
    return ImageEncoderViT(
        depth=config.depth,
        embed_dim=config.embed_dim,
        img_size=config.img_size,
        mlp_ratio=config.mlp_ratio,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=config.num_heads,
        patch_size=config.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=config.global_attn_indexes,
        window_size=config.window_size,
        out_chans=PROMPT_EMBED_DIM,
    )


def build_prompt_encoder() -> PromptEncoder:
    grid = IMAGE_SIZE // 16
    return PromptEncoder(
        embed_dim=PROMPT_EMBED_DIM,
        image_embedding_size=(grid, grid),
        input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
        mask_in_chans=16,
    )


def build_mask_decoder() -> MaskDecoder:
    return MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=2, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=2048, num_heads=8
        ),
        transformer_dim=PROMPT_EMBED_DIM,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )


def build_sam(config: EncoderConfig) -> Sam:
    """An untrained Sam with `config`'s image encoder (as build_sam.py builds it)."""
    sam = Sam(
        image_encoder=build_image_encoder(config),
        prompt_encoder=build_prompt_encoder(),
        mask_decoder=build_mask_decoder(),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()


def load_sam(path: Path | str, arch: str) -> Sam:
    """Build the whole Sam for `arch` and load the checkpoint strictly."""
    state = read_state_dict(path)
    sam = build_sam(config_for_arch(state, arch))
    _load_strict(sam, state, what="SAM model")
    return sam


@dataclass
class DecoderParts:
    """What decoding needs: the prompt encoder and the mask decoder."""

    prompt_encoder: PromptEncoder
    mask_decoder: MaskDecoder


def load_decoder(path: Path | str, arch: str) -> DecoderParts:
    """Load only the prompt encoder and mask decoder (the web process's share).

    The image encoder's shapes are still checked against `arch`, but its
    weights are never copied into a module.
    """
    state = read_state_dict(path)
    config_for_arch(state, arch)
    parts = DecoderParts(build_prompt_encoder().eval(), build_mask_decoder().eval())
    for prefix, module in (
        ("prompt_encoder.", parts.prompt_encoder),
        ("mask_decoder.", parts.mask_decoder),
    ):
        sub = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        _load_strict(module, sub, what=prefix.rstrip("."))
    return parts


def load_decoder_override(parts: DecoderParts, path: Path | str) -> None:
    """Replace the prompt encoder's and mask decoder's weights with an
    adapted decoder's (a safetensors file of those two modules, in the
    official checkpoint's key names): data only, never code."""
    state = load_file(str(path))
    for prefix, module in (
        ("prompt_encoder.", parts.prompt_encoder),
        ("mask_decoder.", parts.mask_decoder),
    ):
        sub = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        _load_strict(module, sub, what=f"adapted {prefix.rstrip('.')}")


def _load_strict(module: nn.Module, state: StateDict, *, what: str) -> None:
    result = module.load_state_dict(_matching_shapes(module, state, what), strict=False)
    problems = []
    if result.missing_keys:
        problems.append("missing keys: " + _some(result.missing_keys))
    if result.unexpected_keys:
        problems.append("unexpected keys: " + _some(result.unexpected_keys))
    if problems:
        raise CheckpointError(f"the checkpoint does not fit the {what} ({'; '.join(problems)})")


def _matching_shapes(module: nn.Module, state: StateDict, what: str) -> StateDict:
    expected = module.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if wrong:
        raise CheckpointError(f"the checkpoint does not fit the {what} (shapes: {_some(wrong)})")
    return state


def _some(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
