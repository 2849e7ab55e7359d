"""A box detector on SAM's image embedding (CellSAM's idea: a detector finds
every object and prompts SAM with its box).

`BoxHead` is a small convolutional head, trained per project on the curated
instances (worker/training/detector.py), that reads a tile's stored
(256, 64, 64) embedding and predicts, on the same 64 x 64 grid (one cell per
16 x 16 pixels of SAM's 1024 frame), in the manner of CenterNet (Zhou et
al. 2019, "Objects as points"):

- `heat`: the logit that an object's centre lies in the cell;
- `size`: the object's box width and height, as log(side / 16);
- `offset`: where in the cell the centre lies (0 to 1, through a sigmoid).

`detect` keeps the cells that are local maxima of the heat (3 x 3) above a
threshold and turns each into a box in the 1024 frame. Weights are kept as
safetensors with the head's width in the metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional

from worker.engines.sam.loading import EMBEDDING_SHAPE, IMAGE_SIZE

GRID = EMBEDDING_SHAPE[1]
STRIDE = IMAGE_SIZE / GRID  # model-frame pixels per cell
HIDDEN = 128
PRIOR = 0.05  # initial chance of a centre per cell
THRESHOLD = 0.3  # centre probability a detection needs
MAX_BOXES = 400  # per tile


class BoxHead(nn.Module):
    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.hidden = hidden
        self.body = nn.Sequential(
            nn.Conv2d(EMBEDDING_SHAPE[0], hidden, 3, padding=1),
            nn.GroupNorm(8, hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2),  # sees 7 x 7 cells
            nn.GroupNorm(8, hidden),
            nn.ReLU(),
        )
        self.heat = nn.Conv2d(hidden, 1, 1)
        self.size = nn.Conv2d(hidden, 2, 1)
        self.offset = nn.Conv2d(hidden, 2, 1)
        nn.init.constant_(self.heat.bias, float(np.log(PRIOR / (1 - PRIOR))))  # type: ignore[arg-type]

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 256, 64, 64) -> heat logits (B, 64, 64), log sizes (B, 2, 64, 64),
        offsets (B, 2, 64, 64) in [0, 1]."""
        body = self.body(features)
        return self.heat(body)[:, 0], self.size(body), torch.sigmoid(self.offset(body))


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1 in the 1024 model frame
    scores: np.ndarray  # (N,) centre probabilities, best first


def detect(
    head: BoxHead,
    features: np.ndarray,
    input_size: tuple[int, int],
    *,
    threshold: float = THRESHOLD,
    max_boxes: int = MAX_BOXES,
) -> Detections:
    """The boxes `head` finds in one tile's features; `input_size` (h, w) is
    the part of the 1024 square the tile's pixels cover (the rest is padding)."""
    with torch.inference_mode():
        heat, size, offset = head(torch.from_numpy(np.asarray(features, np.float32))[None])
    return boxes_from_maps(heat[0], size[0], offset[0], input_size, threshold, max_boxes)


def boxes_from_maps(
    heat: torch.Tensor,
    size: torch.Tensor,
    offset: torch.Tensor,
    input_size: tuple[int, int],
    threshold: float,
    max_boxes: int,
) -> Detections:
    """Peaks of one tile's heat logits (64, 64) as boxes in the 1024 frame."""
    prob = torch.sigmoid(heat)
    rows, cols = (int(np.ceil(v / STRIDE)) for v in input_size)
    valid = torch.zeros_like(prob, dtype=torch.bool)
    valid[:rows, :cols] = True
    peak = prob == functional.max_pool2d(prob[None, None], 3, stride=1, padding=1)[0, 0]
    ys, xs = torch.nonzero(peak & valid & (prob >= threshold), as_tuple=True)
    scores = prob[ys, xs]
    order = torch.argsort(scores, descending=True)[:max_boxes]
    ys, xs, scores = ys[order], xs[order], scores[order]
    cx = (xs.float() + offset[0, ys, xs]) * STRIDE
    cy = (ys.float() + offset[1, ys, xs]) * STRIDE
    width = torch.exp(size[0, ys, xs].clamp(max=6.0)) * STRIDE
    height = torch.exp(size[1, ys, xs].clamp(max=6.0)) * STRIDE
    boxes = torch.stack([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], 1)
    limits = torch.tensor([input_size[1], input_size[0]] * 2, dtype=boxes.dtype)
    boxes = torch.minimum(boxes.clamp(min=0), limits)
    return Detections(boxes.numpy().reshape(-1, 4), scores.numpy())


def detector_save(head: BoxHead, path: Path) -> None:
    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(path), metadata={"format": "maskroom-box-head",
                                          "hidden": str(head.hidden)})  # fmt: skip


def detector_load(path: str | Path) -> BoxHead:
    """A head from its safetensors file (no pickle); ValueError for another file."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != "maskroom-box-head":
            raise ValueError(f"{Path(path).name} is not a maskroom box detector")
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    head = BoxHead(int(metadata["hidden"]))
    head.load_state_dict(state)
    return head.eval()
