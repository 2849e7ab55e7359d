// The instance layer's pixels: a pyramid of tiles painted from the instances'
// decoded crops, made when first on screen and kept in a bounded cache.
//
// Level k shows the image at 1/2^k resolution (s = 2^k image pixels per tile
// pixel); tile (tx, ty) of level k covers image pixels [tx T s, (tx + 1) T s)
// x [ty T s, (ty + 1) T s), T = TILE. A tile is two canvases: `fill` (every
// mask pixel in its instance's colour) and `edge` (the outlines only), so the
// layer sets opacity and outline-only when compositing. A tile pixel samples
// the image pixel at the centre of its s x s block; it is an edge pixel when
// a sample s pixels away (4-neighbours) is outside the same instance, so
// outlines stay closed at every level. Later instances paint over earlier ones.
//
// An image of 2,000 cells at 1024 x 1024 is 4 tiles of level 0; a 10,000 px
// image zoomed out is a few tiles of a coarse level, never 400 full ones.

export const TILE = 512;
const MAX_TILES = 48; // 2 canvases of TILE² RGBA each: ~100 MiB at most

function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

export function intersects(a, b) {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

export class TilePyramid {
  // items(): the instances in paint order, each {rect, crop, packed};
  // stats: counters to bump (tilePaints, regionPaints, instancePaints).
  constructor({ items, stats }) {
    this.items = items;
    this.stats = stats;
    this.size = [0, 0]; // [h, w] of the image
    this.tiles = new Map(); // "level:tx,ty" -> tile, most recently used last
  }

  setSize(size) {
    if (size[0] === this.size[0] && size[1] === this.size[1]) return;
    this.size = size;
    this.clear();
  }

  clear() {
    this.tiles.clear();
  }

  // The coarsest level whose pixels are no larger than a device pixel.
  static levelFor(devicePxPerImagePx) {
    const level = Math.floor(Math.log2(Math.max(1, 1 / devicePxPerImagePx)) + 1e-9);
    return Math.min(12, Math.max(0, level));
  }

  // The tiles of `level` meeting image rectangle `view`, painted if new.
  visibleTiles(level, view) {
    const [h, w] = this.size;
    const span = TILE * 2 ** level;
    const tx0 = Math.max(0, Math.floor(view.x0 / span));
    const ty0 = Math.max(0, Math.floor(view.y0 / span));
    const tx1 = Math.min(Math.ceil(w / span), Math.ceil(view.x1 / span));
    const ty1 = Math.min(Math.ceil(h / span), Math.ceil(view.y1 / span));
    const out = [];
    for (let ty = ty0; ty < ty1; ty += 1) {
      for (let tx = tx0; tx < tx1; tx += 1) {
        const tile = this.tile(level, tx, ty);
        if (tile.fill) out.push(tile);
      }
    }
    this.evict(out.length);
    return out;
  }

  tile(level, tx, ty) {
    const key = `${level}:${tx},${ty}`;
    let tile = this.tiles.get(key);
    if (tile) {
      this.tiles.delete(key); // to the end: most recently used
    } else {
      tile = this.tileCreate(level, tx, ty);
    }
    this.tiles.set(key, tile);
    return tile;
  }

  tileCreate(level, tx, ty) {
    const [h, w] = this.size;
    const s = 2 ** level;
    const span = TILE * s;
    const rect = { x0: tx * span, y0: ty * span, x1: Math.min(w, (tx + 1) * span), y1: Math.min(h, (ty + 1) * span) };
    const tile = { level, s, rect, width: Math.ceil((rect.x1 - rect.x0) / s), height: Math.ceil((rect.y1 - rect.y0) / s) };
    if (!this.covering(rect).length) return tile; // empty: no canvases
    tile.fill = makeCanvas(tile.width, tile.height);
    tile.edge = makeCanvas(tile.width, tile.height);
    tile.fillCtx = tile.fill.getContext("2d");
    tile.edgeCtx = tile.edge.getContext("2d");
    this.paint(tile, 0, 0, tile.width, tile.height);
    this.stats.tilePaints += 1;
    return tile;
  }

  // Keep the cache bounded; the `keep` most recently used tiles stay.
  evict(keep) {
    const limit = Math.max(MAX_TILES, keep);
    for (const key of this.tiles.keys()) {
      if (this.tiles.size <= limit) break;
      this.tiles.delete(key);
    }
  }

  // Image rectangle `rect` changed: repaint it in every cached tile.
  invalidate(rect) {
    for (const [key, tile] of this.tiles) {
      if (!intersects(tile.rect, rect)) continue;
      if (!tile.fill) {
        this.tiles.delete(key); // was empty; made again when next on screen
        continue;
      }
      const { s } = tile;
      const px0 = Math.max(0, Math.floor((rect.x0 - tile.rect.x0) / s));
      const py0 = Math.max(0, Math.floor((rect.y0 - tile.rect.y0) / s));
      const px1 = Math.min(tile.width, Math.ceil((rect.x1 - tile.rect.x0) / s));
      const py1 = Math.min(tile.height, Math.ceil((rect.y1 - tile.rect.y0) / s));
      if (px1 > px0 && py1 > py0) this.paint(tile, px0, py0, px1 - px0, py1 - py0);
    }
  }

  covering(rect) {
    const out = [];
    for (const item of this.items()) if (item.crop.area && intersects(item.rect, rect)) out.push(item);
    return out;
  }

  // Repaint tile pixels [px0, px0 + width) x [py0, py0 + height) from every instance there.
  paint(tile, px0, py0, width, height) {
    const { s } = tile;
    const region = {
      x0: tile.rect.x0 + px0 * s,
      y0: tile.rect.y0 + py0 * s,
      x1: tile.rect.x0 + (px0 + width) * s,
      y1: tile.rect.y0 + (py0 + height) * s,
    };
    const fill = new ImageData(width, height);
    const edge = new ImageData(width, height);
    const fill32 = new Uint32Array(fill.data.buffer);
    const edge32 = new Uint32Array(edge.data.buffer);
    for (const item of this.covering(region)) {
      if (s === 1) paintCrop(item, fill32, edge32, region.x0, region.y0, width, height);
      else paintCropSampled(item, fill32, edge32, region.x0, region.y0, width, height, s);
      this.stats.instancePaints += 1;
    }
    tile.fillCtx.putImageData(fill, px0, py0);
    tile.edgeCtx.putImageData(edge, px0, py0);
    this.stats.regionPaints += 1;
  }
}

// Level 0: one tile pixel per image pixel; the crop marks edges as 2.
export function paintCrop(item, fill32, edge32, x0, y0, width, height) {
  const { crop, packed } = item;
  const ax0 = Math.max(x0, crop.x0);
  const ax1 = Math.min(x0 + width, crop.x0 + crop.width);
  const ay0 = Math.max(y0, crop.y0);
  const ay1 = Math.min(y0 + height, crop.y0 + crop.height);
  const data = crop.data;
  for (let y = ay0; y < ay1; y += 1) {
    let src = (y - crop.y0) * crop.width + (ax0 - crop.x0);
    let dst = (y - y0) * width + (ax0 - x0);
    for (let x = ax0; x < ax1; x += 1, src += 1, dst += 1) {
      const v = data[src];
      if (v === 0) continue;
      fill32[dst] = packed;
      edge32[dst] = v === 2 ? packed : 0; // a later instance's inside hides an earlier outline
    }
  }
}

// Level k > 0: tile pixel (px, py) samples image pixel x0 + px s + s/2 (same for y).
export function paintCropSampled(item, fill32, edge32, x0, y0, width, height, s) {
  const { crop, packed } = item;
  const { data, width: cw, height: ch } = crop;
  const half = s >> 1;
  const at = (cx, cy) => cx >= 0 && cy >= 0 && cx < cw && cy < ch && data[cy * cw + cx] !== 0;
  const px0 = Math.max(0, Math.ceil((crop.x0 - x0 - half) / s));
  const px1 = Math.min(width, Math.ceil((crop.x0 + cw - x0 - half) / s));
  const py0 = Math.max(0, Math.ceil((crop.y0 - y0 - half) / s));
  const py1 = Math.min(height, Math.ceil((crop.y0 + ch - y0 - half) / s));
  for (let py = py0; py < py1; py += 1) {
    const cy = y0 + py * s + half - crop.y0;
    for (let px = px0; px < px1; px += 1) {
      const cx = x0 + px * s + half - crop.x0;
      if (!data[cy * cw + cx]) continue;
      const dst = py * width + px;
      fill32[dst] = packed;
      const inner = at(cx - s, cy) && at(cx + s, cy) && at(cx, cy - s) && at(cx, cy + s);
      edge32[dst] = inner ? 0 : packed;
    }
  }
}
