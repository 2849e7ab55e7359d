"""TiledEngine: any engine at native resolution on images larger than its input.

SAM shrinks every image to 1024 px on its long side, so on a 4096 px
micrograph a 12 px nucleus becomes 3 px and vanishes. Above
`TilingConfig.threshold` the image is cut into `tile_size` squares that
overlap by `overlap` px, each embedded at native resolution by the wrapped
engine, plus (`overview`) one embedding of the whole image, shrunk as
without tiling, for objects no tile holds.

Layout (image pixels): along each axis tiles start every
`tile_size - overlap` px and the last one is aligned to the image edge, so
every tile is `tile_size` long unless the image itself is shorter on that
axis. An object at most `overlap` px across lies whole inside some tile
(take the tile that starts at or before its left edge nearest to it).

Embedding: one EmbeddingSet whose `tiles[i]` and `arrays[i]` come from
`inner.embed(crop i)`; `meta["tiling"]` records the parameters and the
overview's index (0, the tile covering the whole image, or None) and
`meta["tile_meta"][i]` the inner engine's meta for tile i. An image at or
under the threshold gets the inner engine's own EmbeddingSet unchanged, so
embeddings made before tiling still decode.

Decode: the prompt goes to the native tile in which its bounding box lies
most centrally (largest distance to a tile side that is not the image
border), shifted into the tile's frame; the mask comes back shifted to the
image frame with `tile_index` set. A refinement stays in its tile while the
tile holds the prompt (the previous logits are in that tile's frame). When
the mask reaches a side of its tile that is not the image border, the
object is cut: it is decoded again in the tile that best holds the prompt
and the mask so far, or in the overview when no tile holds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.engines.base import EmbeddingSet, Engine, MaskResult, Prepares, Prompt, Tile

EDGE_TOLERANCE_PX = 2  # a mask this close to a tile side counts as reaching it
MAX_MOVES = 2  # re-decodes in another tile after a cut mask

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in image pixels


@dataclass(frozen=True)
class TilingConfig:
    """When and how to tile; `threshold` 0 turns tiling off.

    An image is tiled when its long side exceeds `threshold` px. Objects up
    to `overlap` px across are always whole in one native tile.
    """

    threshold: int = 2048
    tile_size: int = 1024
    overlap: int = 256
    overview: bool = True

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"the tiling threshold must be >= 0, got {self.threshold}")
        if self.tile_size < 1:
            raise ValueError(f"the tile size must be >= 1 px, got {self.tile_size}")
        if not 0 <= self.overlap < self.tile_size:
            raise ValueError(
                f"the tile overlap must be in [0, {self.tile_size}), got {self.overlap}"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> TilingConfig:
        """The config named by Django's TILE_THRESHOLD, TILE_SIZE and TILE_OVERLAP."""
        return cls(
            threshold=int(settings.TILE_THRESHOLD),
            tile_size=int(settings.TILE_SIZE),
            overlap=int(settings.TILE_OVERLAP),
        )

    def tiles(self, height: int, width: int) -> bool:
        """Whether an image of this size is tiled."""
        return self.threshold > 0 and max(height, width) > self.threshold


# -- layout ------------------------------------------------------------------


def tile_starts(length: int, tile_size: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis of `length` px.

    Every `tile_size - overlap` px, the last one aligned to the end; one
    tile at 0 when the axis is no longer than a tile.
    """
    if length < 1:
        raise ValueError(f"an image axis must be at least 1 px long, got {length}")
    if length <= tile_size:
        return [0]
    stride = tile_size - overlap
    count = math.ceil((length - tile_size) / stride) + 1
    return [min(i * stride, length - tile_size) for i in range(count)]


def tile_layout(height: int, width: int, tile_size: int, overlap: int) -> list[Tile]:
    """The native tiles of a (height, width) image, row by row."""
    return [
        Tile(x0=x0, y0=y0, width=min(tile_size, width), height=min(tile_size, height))
        for y0 in tile_starts(height, tile_size, overlap)
        for x0 in tile_starts(width, tile_size, overlap)
    ]


# -- geometry ----------------------------------------------------------------


def prompt_bounds(prompt: Prompt) -> Box:
    """The bounding box of all clicks (positive and negative) and the box."""
    xs = [p[0] for p in prompt.points_xy_image]
    ys = [p[1] for p in prompt.points_xy_image]
    if prompt.box_xyxy_image is not None:
        bx0, by0, bx1, by1 = prompt.box_xyxy_image
        xs += [bx0, bx1]
        ys += [by0, by1]
    if not xs:
        raise ValueError("a prompt needs at least one point or a box")
    return min(xs), min(ys), max(xs), max(ys)


def union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def margin(tile: Tile, box: Box, height: int, width: int) -> float:
    """How far `box` stays from the tile's sides that are not the image border.

    Negative when the box crosses such a side; infinite for a tile covering
    the whole image. A click's (x, y) counts as inside when x0 <= x <= x1.
    """
    x0, y0, x1, y1 = box
    inner_sides = (
        (tile.x0 > 0, x0 - tile.x0),
        (tile.y0 > 0, y0 - tile.y0),
        (tile.x0 + tile.width < width, tile.x0 + tile.width - x1),
        (tile.y0 + tile.height < height, tile.y0 + tile.height - y1),
    )
    return min((d for inner, d in inner_sides if inner), default=math.inf)


def best_tile(
    tiles: Sequence[Tile], candidates: Sequence[int], box: Box, height: int, width: int
) -> int:
    """The candidate tile that holds `box` most centrally; ties go to the
    tile whose centre is nearest the box's centre."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2

    def rank(index: int) -> tuple[float, float]:
        t = tiles[index]
        off_centre = math.hypot(t.x0 + t.width / 2 - cx, t.y0 + t.height / 2 - cy)
        return margin(t, box, height, width), -off_centre

    return max(candidates, key=rank)


def mask_bounds(result: MaskResult) -> Box | None:
    """The mask's bounding box in image pixels (pixel edges), None if empty."""
    h, w = result.mask_crop.shape
    if h == 0 or w == 0:
        return None
    return result.x0, result.y0, result.x0 + w, result.y0 + h


def reaches_inner_side(result: MaskResult, tile: Tile, height: int, width: int) -> bool:
    """Whether a mask (image frame) reaches a side of `tile` inside the image."""
    bounds = mask_bounds(result)
    if bounds is None:
        return False
    x0, y0, x1, y1 = bounds
    tol = EDGE_TOLERANCE_PX
    return (
        (tile.x0 > 0 and x0 - tile.x0 <= tol)
        or (tile.y0 > 0 and y0 - tile.y0 <= tol)
        or (tile.x0 + tile.width < width and tile.x0 + tile.width - x1 <= tol)
        or (tile.y0 + tile.height < height and tile.y0 + tile.height - y1 <= tol)
    )


def shift_prompt(prompt: Prompt, dx: float, dy: float) -> Prompt:
    """The prompt moved by (dx, dy): image frame to tile frame with (-x0, -y0)."""
    box = prompt.box_xyxy_image
    if box is not None:
        box = (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
    points = tuple((x + dx, y + dy, label) for x, y, label in prompt.points_xy_image)
    return Prompt(points_xy_image=points, box_xyxy_image=box)


def shift_result(result: MaskResult, dx: int, dy: int, tile_index: int) -> MaskResult:
    """The result moved by (dx, dy); an empty mask stays a (0, 0) crop at (0, 0)."""
    empty = result.mask_crop.size == 0
    return MaskResult(
        mask_crop=result.mask_crop,
        x0=0 if empty else result.x0 + dx,
        y0=0 if empty else result.y0 + dy,
        score=result.score,
        logits=result.logits,
        tile_index=tile_index,
    )


# -- the engine ----------------------------------------------------------------


def is_tiled(embedding: EmbeddingSet) -> bool:
    return "tiling" in embedding.meta


def overview_index(embedding: EmbeddingSet) -> int | None:
    """The index of the tile that covers the whole image shrunk (tiled embeddings only)."""
    if not is_tiled(embedding):
        return None
    tiling: dict[str, object] = embedding.meta["tiling"]  # type: ignore[assignment]
    overview = tiling.get("overview")
    return None if overview is None else int(overview)  # type: ignore[call-overload]


def native_tiles(embedding: EmbeddingSet) -> list[int]:
    """Indices of the tiles at native resolution (for a grid over the image:
    the overview repeats them, coarser); [0] for an untiled embedding."""
    overview = overview_index(embedding)
    return [i for i in range(len(embedding.tiles)) if i != overview]


def tile_for_box(embedding: EmbeddingSet, box: Box) -> int:
    """The native tile of a tiled embedding that holds `box` (image pixels)
    most centrally, or the overview when no native tile holds it whole."""
    h, w = embedding.image_height, embedding.image_width
    index = best_tile(embedding.tiles, native_tiles(embedding), box, h, w)
    overview = overview_index(embedding)
    if overview is not None and margin(embedding.tiles[index], box, h, w) < 0:
        return overview
    return index


def tile_view(embedding: EmbeddingSet, index: int) -> EmbeddingSet:
    """Tile `index` of a tiled embedding as the inner engine's own one-tile
    embedding of the crop (tile frame: the crop's top-left is (0, 0))."""
    tile = embedding.tiles[index]
    tile_meta: list[dict[str, object]] = embedding.meta["tile_meta"]  # type: ignore[assignment]
    return EmbeddingSet(
        engine_key=embedding.engine_key,
        image_height=tile.height,
        image_width=tile.width,
        tiles=[Tile(x0=0, y0=0, width=tile.width, height=tile.height)],
        arrays=[embedding.arrays[index]],
        meta=dict(tile_meta[index]),
    )


class TiledEngine:
    """`inner` on native-resolution tiles of large images (see the module docstring)."""

    def __init__(
        self, inner: Engine, config: TilingConfig | None = None, *, max_moves: int = MAX_MOVES
    ) -> None:
        self.inner = inner
        self.config = config or TilingConfig()
        self.max_moves = max_moves
        # The inner key: decode tells tiled embeddings apart by their meta, so
        # stored embeddings stay valid whatever the tiling settings become.
        self.key = inner.key
        self.embedding_key = inner.embedding_key
        self.description = inner.description

    # -- embedding ---------------------------------------------------------

    def will_tile(self, height: int, width: int) -> bool:
        """Whether `embed` makes several tiles of an image of this size."""
        cfg = self.config
        native = tile_layout(height, width, cfg.tile_size, cfg.overlap)
        return cfg.tiles(height, width) and len(native) > 1

    def embed(self, image_rgb: np.ndarray, overview: EmbeddingSet | None = None) -> EmbeddingSet:
        """The inner engine's embedding of an (H, W, 3) image, tiled when large.

        `overview`, the inner engine's embedding of the whole image (what an
        untiled image gets, and the overview tile is), is used as that tile
        instead of computing it again.
        """
        image = np.asarray(image_rgb)
        height, width = image.shape[:2]
        cfg = self.config
        if not self.will_tile(height, width):
            return self.inner.embed(image)
        native = tile_layout(height, width, cfg.tile_size, cfg.overlap)
        tiles = ([Tile(0, 0, width, height)] if cfg.overview else []) + native
        crops = [image[t.y0 : t.y0 + t.height, t.x0 : t.x0 + t.width] for t in tiles]
        if cfg.overview and overview is not None:
            parts = [overview, *self._embed_all(crops[1:])]
        else:
            parts = self._embed_all(crops)
        for tile, part in zip(tiles, parts, strict=True):
            if len(part.arrays) != 1 or (part.image_height, part.image_width) != (
                tile.height,
                tile.width,
            ):
                raise ValueError(f"{self.inner.key} must embed a tile as one tile of its size")
        return EmbeddingSet(
            engine_key=self.inner.embedding_key,
            image_height=height,
            image_width=width,
            tiles=tiles,
            arrays=[part.arrays[0] for part in parts],
            meta={
                "tiling": {
                    "tile_size": cfg.tile_size,
                    "overlap": cfg.overlap,
                    "threshold": cfg.threshold,
                    "overview": 0 if cfg.overview else None,
                },
                "tile_meta": [part.meta for part in parts],
            },
        )

    def _embed_all(self, crops: list[np.ndarray]) -> list[EmbeddingSet]:
        """The inner engine's embedding of each crop (views into the image).

        `embed_batch`, when the inner engine has one, gets them all: it
        bounds its own batch (SamEngine: `max_batch` images per pass).
        """
        batch: Callable[[list[np.ndarray]], list[EmbeddingSet]] | None = getattr(
            self.inner, "embed_batch", None
        )
        if batch is not None:
            return batch(crops)
        return [self.inner.embed(np.ascontiguousarray(crop)) for crop in crops]

    # -- decoding ----------------------------------------------------------

    def prepare(self, embedding: EmbeddingSet) -> None:
        """The inner engine's per-image work for an untiled embedding; a tiled
        one's first click may fall in any tile, so nothing is done ahead."""
        if not is_tiled(embedding) and isinstance(self.inner, Prepares):
            self.inner.prepare(embedding)

    def decode(
        self, embedding: EmbeddingSet, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        """One mask for `prompt` (image pixels) from the tile that holds it best."""
        if not is_tiled(embedding):
            return self.inner.decode(embedding, prompt, previous)
        bounds = prompt_bounds(prompt)
        if previous is not None and self._holds(embedding, previous.tile_index, bounds):
            index, carried = previous.tile_index, previous
        else:
            index, carried = tile_for_box(embedding, bounds), None
        result = self._decode_in(embedding, index, prompt, carried)
        region, seen = bounds, {index}
        for _ in range(self.max_moves):
            tile = embedding.tiles[index]
            if not reaches_inner_side(result, tile, embedding.image_height, embedding.image_width):
                break
            cut = mask_bounds(result)
            region = union(region, cut) if cut is not None else region
            index = self._move(embedding, index, region)
            if index in seen:
                break
            seen.add(index)
            # The previous logits belong to the other tile's frame.
            moved = self._decode_in(embedding, index, prompt, None)
            if moved.mask_crop.size == 0:
                break
            result = moved
        return result

    def _decode_in(
        self, embedding: EmbeddingSet, index: int, prompt: Prompt, previous: MaskResult | None
    ) -> MaskResult:
        tile = embedding.tiles[index]
        local_previous = None if previous is None else shift_result(previous, -tile.x0, -tile.y0, 0)
        local = self.inner.decode(
            tile_view(embedding, index), shift_prompt(prompt, -tile.x0, -tile.y0), local_previous
        )
        return shift_result(local, tile.x0, tile.y0, index)

    def _holds(self, embedding: EmbeddingSet, index: int, box: Box) -> bool:
        if not 0 <= index < len(embedding.tiles):
            return False
        h, w = embedding.image_height, embedding.image_width
        return margin(embedding.tiles[index], box, h, w) >= 0

    def _move(self, embedding: EmbeddingSet, current: int, region: Box) -> int:
        """Where to decode a mask cut by tile `current`'s side: a native tile
        that holds `region` (prompt and mask so far) better, else the overview."""
        h, w = embedding.image_height, embedding.image_width
        best = best_tile(embedding.tiles, native_tiles(embedding), region, h, w)
        gain = margin(embedding.tiles[best], region, h, w) - margin(
            embedding.tiles[current], region, h, w
        )
        if best != current and gain > 0 and margin(embedding.tiles[best], region, h, w) > 0:
            return best
        overview = overview_index(embedding)
        return current if overview is None else overview
