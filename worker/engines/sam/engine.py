"""SamEngine: Segment Anything behind maskroom's Engine interface.

`embed` and `embed_batch` compute what SamPredictor.set_image does
(ResizeLongestSide(1024), pixel mean/std, zero padding to 1024x1024, the
ViT) through worker/engines/sam/encoder.py: batched, SDPA attention, on
`device` ("auto": CUDA if present), in float32 (the default: the reference
to float tolerance) or bfloat16 autocast (`precision`; "auto" picks it where
the hardware computes it natively). Each image is one tile: the
(256, 64, 64) feature map as float16.

`decode` follows SamPredictor.predict: prompts go from image pixels to the
1024 model frame with ResizeLongestSide; a first single click (no box, no
previous mask) asks for the three multimask outputs and keeps the one with
the best predicted IoU, as SAM recommends for ambiguous clicks; otherwise
the single-mask output is used, and a previous result's 1x256x256 logits are
fed back as mask input. The mask comes back as a tight crop (`x0`, `y0` =
its bbox origin); an empty mask is a (0, 0) crop at (0, 0).

Decoder backends: "torch" (segment_anything's modules, float32) or "onnx"
(the same computation in ONNX Runtime, exported once per engine key and
checked against torch at load). "auto" picks ONNX when it loads and agrees.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from worker.engines.base import EmbeddingSet, MaskResult, Prompt, Tile
from worker.engines.proposing import ProposalSettings
from worker.engines.sam import grid as sam_grid
from worker.engines.sam import loading as sam_loading
from worker.engines.sam import masks as sam_masks
from worker.engines.sam.box_proposals import box_candidates, detected_boxes
from worker.engines.sam.decoder.onnx import DecoderGraph, OnnxDecoder, load_or_export, onnx_path_for
from worker.engines.sam.detector import BoxHead, detector_load
from worker.engines.sam.encoder import BatchEncoder, EncodedImage, Precision
from worker.engines.sam.loading import EMBEDDING_SHAPE
from worker.engines.sam.masks import MASK_THRESHOLD
from worker.engines.sam.preprocessing import input_size, is_square, model_coords
from worker.engines.spec import EngineSpec

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx"]
_ONNX_CHECK_TOLERANCE = 1e-2  # max |logit| or IoU prediction difference at load


class SamEngine:
    """A SAM checkpoint, loaded once per process.

    `load_image_encoder=False` loads only the prompt encoder and mask decoder
    (what the web process needs). `threads` > 0 sets torch's intra-op thread
    count (process-wide) and the ONNX session's. `models_dir` caches the
    exported ONNX decoder (default: the checkpoint's folder). `device`,
    `precision` and `max_batch` (images per encoder pass, 0: 2 on a CPU, 8
    on a GPU) concern the image encoder only; decoding stays on the CPU.
    """

    def __init__(
        self,
        spec: EngineSpec,
        *,
        load_image_encoder: bool = True,
        threads: int = 0,
        backend: Backend = "auto",
        models_dir: Path | None = None,
        device: str = "auto",
        precision: Precision = "float32",
        max_batch: int = 0,
    ) -> None:
        if not spec.is_sam:
            raise ValueError(f"{spec.name} is not a SAM model")
        self.spec = spec
        self.key = spec.key
        self.embedding_key = spec.embedding_key
        self.decoder_key = spec.decoder_key
        self.description = f"SAM {spec.arch} ({spec.name})"
        self.threads = threads
        if threads > 0:
            torch.set_num_threads(threads)
        self.preprocessing = spec.preprocessing
        self.square = is_square(spec.preprocessing)
        self.image_encoder: torch.nn.Module | None = None
        self.encoder: BatchEncoder | None = None
        if load_image_encoder:
            sam = sam_loading.load_sam(spec.checkpoint_path, spec.arch)
            self.encoder = BatchEncoder(
                sam.image_encoder,
                sam.pixel_mean,
                sam.pixel_std,
                device=device,
                precision=precision,
                max_batch=max_batch,
                preprocessing=spec.preprocessing,
            )
            self.image_encoder = self.encoder.encoder
            parts = sam_loading.DecoderParts(sam.prompt_encoder, sam.mask_decoder)
        else:
            parts = sam_loading.load_decoder(spec.checkpoint_path, spec.arch)
        if spec.decoder_path:
            sam_loading.load_decoder_override(parts, spec.decoder_path)
        self.prompt_encoder = parts.prompt_encoder
        self.mask_decoder = parts.mask_decoder
        self.detector: BoxHead | None = (
            detector_load(spec.detector_path) if spec.detector_path else None
        )
        self.onnx: OnnxDecoder | None = None
        if backend != "torch":
            folder = models_dir or Path(spec.checkpoint_path).parent
            self.onnx = self._load_onnx(folder, required=backend == "onnx")
        self.backend = "onnx" if self.onnx is not None else "torch"

    # -- embedding ---------------------------------------------------------

    def embed(self, image_rgb: np.ndarray) -> EmbeddingSet:
        """The (256, 64, 64) float16 embedding of an (H, W, 3) uint8 RGB image.

        (H, W) and (H, W, 1) grayscale images are repeated to three channels.
        """
        return self.embed_batch([image_rgb])[0]

    def embed_batch(self, images_rgb: Sequence[np.ndarray]) -> list[EmbeddingSet]:
        """`embed` of each image, in order, batched through the image encoder
        (`max_batch` images per pass). One bad image fails the whole call."""
        if self.encoder is None:
            raise RuntimeError(f"{self.key} was loaded for decoding only")
        images = [_as_rgb(image) for image in images_rgb]
        encoded = self.encoder.encode(images)
        return [self._embedding_set(i, e) for i, e in zip(images, encoded, strict=True)]

    def _embedding_set(self, image: np.ndarray, encoded: EncodedImage) -> EmbeddingSet:
        height, width = image.shape[:2]
        return EmbeddingSet(
            engine_key=self.embedding_key,
            image_height=height,
            image_width=width,
            tiles=[Tile(x0=0, y0=0, width=width, height=height)],
            arrays=[encoded.features],
            meta={
                "input_size": list(encoded.input_size),
                "original_size": [height, width],
                "model_size": sam_loading.IMAGE_SIZE,
            },
        )

    # -- decoding ----------------------------------------------------------

    def prepare(self, embedding: EmbeddingSet) -> None:
        """Compute the ONNX decoder's image state of `embedding` (kept while
        the embedding array lives; about 30 ms for vit_b on one core)."""
        if self.onnx is not None:
            features, _, _ = self._unpack(embedding)
            self.onnx.image_state(features)

    def propose(self, embedding: EmbeddingSet, settings: ProposalSettings) -> list[MaskResult]:
        """Proposal candidates: the project's detector's boxes as prompts
        (worker/engines/sam/box_proposals.py), else a grid of clicks per tile
        (worker/engines/sam/grid.py)."""
        if self.detector is not None:
            return box_candidates(self, self.detector, embedding)
        return sam_grid.grid_candidates(self, embedding, settings)

    def detect_boxes(self, embedding: EmbeddingSet) -> tuple[np.ndarray, np.ndarray] | None:
        """The project's detector's boxes (N, 4, image pixels) and scores, or
        None without a detector."""
        if self.detector is None:
            return None
        return detected_boxes(self, self.detector, embedding)

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        """One mask for `prompt` (image pixels), refining `previous` when given."""
        features, input_size, original_size = self._unpack(embedding)
        coords, labels = self.prompt_arrays(prompt, original_size)
        mask_input = previous.logits if previous is not None else None
        multimask = (
            mask_input is None
            and prompt.box_xyxy_image is None
            and len(prompt.points_xy_image) == 1
        )
        if self.onnx is not None:
            logits, ious, index = self.onnx.run(
                features, coords, labels, mask_input, multimask=multimask
            )
        else:
            masks, ious = self.decode_torch(features, coords, labels, mask_input)
            index = 1 + int(np.argmax(ious[1:])) if multimask else 0
            logits = masks[index]
        crop, x0, y0 = sam_masks.upsample_region(
            logits, input_size, original_size, threshold=MASK_THRESHOLD, direct=self.square
        )
        return MaskResult(
            mask_crop=crop,
            x0=x0,
            y0=y0,
            score=float(ious[index]),
            logits=logits[None].astype(np.float32, copy=False),
        )

    def prompt_arrays(
        self, prompt: Prompt, original_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nx2 coords in the model frame and N labels, as SamPredictor feeds them:
        clicks (1/0), then a padding point (-1) or the box corners (2, 3)."""
        if not prompt.points_xy_image and prompt.box_xyxy_image is None:
            raise ValueError("a prompt needs at least one point or a box")
        points = np.array([p[:2] for p in prompt.points_xy_image], dtype=np.float64).reshape(-1, 2)
        labels = [float(p[2]) for p in prompt.points_xy_image]
        if prompt.box_xyxy_image is not None:
            box = np.array(prompt.box_xyxy_image, dtype=np.float64).reshape(2, 2)
            points = np.concatenate([points, box])
            labels += [2.0, 3.0]
        else:
            points = np.concatenate([self.to_model(points, original_size), [[0, 0]]])
            return points.astype(np.float32), np.array([*labels, -1.0], dtype=np.float32)
        return (
            self.to_model(points, original_size).astype(np.float32),
            np.array(labels, dtype=np.float32),
        )

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) an image of this size fills of the 1024 x 1024 model input."""
        return input_size(self.preprocessing, height, width)

    def to_model(self, points_xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Image (x, y) points of an image of `size` (h, w) in the model frame."""
        return model_coords(points_xy, size, self.input_size(*size))

    def decode_torch(
        self,
        features: np.ndarray,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The float32 reference: segment_anything's modules, all four outputs."""
        with torch.inference_mode():
            image = torch.from_numpy(np.asarray(features, dtype=np.float32))[None]
            points, boxes = _split_prompt_tensors(coords, labels)
            masks_in = (
                torch.as_tensor(mask_input, dtype=torch.float32).reshape(1, 1, 256, 256)
                if mask_input is not None
                else None
            )
            sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=masks_in)
            masks, ious = self.mask_decoder.predict_masks(
                image_embeddings=image,
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
            )
        return masks[0].numpy(), ious[0].numpy()

    def _unpack(
        self, embedding: EmbeddingSet
    ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        if embedding.engine_key != self.embedding_key:
            raise ValueError(f"embedding of {embedding.engine_key} given to {self.key}")
        features = embedding.arrays[0]
        if features.shape != EMBEDDING_SHAPE:
            raise ValueError(f"a SAM embedding is {EMBEDDING_SHAPE}, got {features.shape}")
        input_size = tuple(int(v) for v in embedding.meta["input_size"])  # type: ignore[attr-defined]
        original = (embedding.image_height, embedding.image_width)
        return features, (input_size[0], input_size[1]), original

    def _load_onnx(self, folder: Path, *, required: bool) -> OnnxDecoder | None:
        graph = DecoderGraph(self.prompt_encoder, self.mask_decoder).eval()
        for attempt in (1, 2):
            try:
                decoder = load_or_export(graph, folder, self.decoder_key,
                                         threads=self.threads or 2)  # fmt: skip
                self._check_onnx(decoder)
                return decoder
            except Exception as exc:
                cached = onnx_path_for(folder, self.decoder_key)
                if attempt == 1 and cached.is_file():
                    # A stale or damaged cached export: drop it and export afresh.
                    logger.warning("Re-exporting the ONNX decoder of %s: %s", self.key, exc)
                    cached.unlink(missing_ok=True)
                    continue
                if required:
                    raise
                logger.warning("ONNX decoder unavailable for %s, using torch: %s", self.key, exc)
        return None

    def _check_onnx(self, decoder: OnnxDecoder) -> None:
        """Refuse an ONNX decoder (e.g. a stale cached file) that disagrees with
        torch, on a random embedding: a lone click (multimask), a click with a
        box, and a refinement (a mask input)."""
        rng = np.random.default_rng(0)
        features = rng.standard_normal(EMBEDDING_SHAPE).astype(np.float16)
        previous = rng.standard_normal((1, 256, 256)).astype(np.float32)
        prompts = [
            ([[300.0, 400.0], [0.0, 0.0]], [1.0, -1.0], None),
            ([[500.0, 600.0], [420.0, 380.0], [700.0, 800.0]], [1.0, 2.0, 3.0], None),
            ([[300.0, 400.0], [350.0, 420.0], [0.0, 0.0]], [1.0, 0.0, -1.0], previous),
        ]
        for position, (points, point_labels, mask_input) in enumerate(prompts):
            multimask = position == 0  # the lone click
            coords = np.array(points, dtype=np.float32)
            labels = np.array(point_labels, dtype=np.float32)
            masks, want_ious = self.decode_torch(features, coords, labels, mask_input)
            got, ious, index = decoder.run(
                features, coords, labels, mask_input, multimask=multimask
            )
            want_index = 1 + int(np.argmax(want_ious[1:])) if multimask else 0
            iou_error = float(np.abs(want_ious - ious).max())
            if iou_error > _ONNX_CHECK_TOLERANCE or index != want_index:
                raise ValueError(f"the ONNX decoder's IoU predictions disagree ({iou_error:.3g})")
            want = masks[index]
            error = float(np.abs(want - got).max())
            if error > _ONNX_CHECK_TOLERANCE * max(1.0, float(np.abs(want).max())):
                raise ValueError(f"the ONNX decoder disagrees with torch (max error {error:.3g})")


def _split_prompt_tensors(
    coords: np.ndarray, labels: np.ndarray
) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
    """Back from the flat (coords, labels) form to the prompt encoder's arguments."""
    is_box = labels >= 2
    clicks = labels[(~is_box) & (labels != -1)]
    boxes = None
    if is_box.any():
        boxes = torch.from_numpy(coords[is_box].reshape(1, 4).copy())
    points = None
    if clicks.size:
        xy = torch.from_numpy(coords[(~is_box) & (labels != -1)].copy())[None]
        points = (xy, torch.from_numpy(clicks.astype(np.int32))[None])
    return points, boxes


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"SAM embeds uint8 images, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"SAM embeds (H, W, 3) RGB images, got shape {image.shape}")
    return image
