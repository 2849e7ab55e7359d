// The saved instances drawn over the image, fast with thousands of them.
//
// Each instance's RLE is decoded once into a crop of its bounding box whose
// pixels are 0 (outside), 1 (inside) or 2 (edge: inside, with a 4-neighbour
// outside). The crops are painted into tiles at image resolution: each tile
// is a pair of offscreen canvases TILE px square, `fill` (every mask pixel)
// and `edge` (outlines only), made only where instances are. A frame draws
// each visible tile with one drawImage per canvas under the viewer's
// transform. Opacity, outline-only and hide act when compositing (globalAlpha,
// skipping a canvas), so changing them repaints nothing; a change to one
// instance repaints only the rectangles it covered before and covers now,
// from the instances overlapping them, in paint order (the store's order,
// later on top).
//
// Frames: everything here is in xyImage (full-resolution image pixels).

import { maskBitmap, parseColor } from "./overlay.js";
import { decodeCrop } from "./rle.js";

const TILE = 512;
const EDGE_ALPHA = 0.95;
const MAX_DIRTY_RECTS = 64; // past this many pending rectangles, repaint everything
const FALLBACK_COLOR = "#ff0000";

export const DEFAULT_DISPLAY = Object.freeze({ opacity: 0.45, outline: false, hidden: false });

// The crop of `rle` (rle.decodeCrop) with its edge pixels marked 2.
export function decodeInstanceCrop(rle) {
  const crop = decodeCrop(rle);
  const { width, height, data } = crop;
  for (let y = 0; y < height; y += 1) {
    const row = y * width;
    for (let x = 0; x < width; x += 1) {
      const i = row + x;
      if (!data[i]) continue;
      if (
        x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
        !data[i - 1] || !data[i + 1] || !data[i - width] || !data[i + width]
      ) {
        data[i] = 2;
      }
    }
  }
  // The neighbours tested above may already be 2; that is still "inside".
  return crop;
}

function packColor(hex) {
  const [r, g, b] = parseColor(hex);
  // ImageData is RGBA bytes; a little-endian Uint32 view reads them as ABGR.
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

function intersects(a, b) {
  return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

function cropRect(crop) {
  return { x0: crop.x0, y0: crop.y0, x1: crop.x0 + crop.width, y1: crop.y0 + crop.height };
}

export class InstanceLayer extends EventTarget {
  // labels: [{id, name, color}]; the layer draws at `order` among the viewer's layers.
  constructor({ viewer, labels = [], order = 10 }) {
    super();
    this.viewer = viewer;
    this.labels = labels;
    this.items = new Map(); // id -> {instance, crop, color, packed, rect}
    this.tiles = new Map(); // "tx,ty" -> {x, y, width, height, fill, edge}
    this.size = null; // [h, w] of the image, from the RLEs
    this.dirty = []; // rectangles waiting to be repainted
    this.display = { ...DEFAULT_DISPLAY };
    this.selected = new Set();
    this.hovered = null;
    this.highlights = new Map(); // id -> {crop, canvas}: selected and hovered bitmaps
    // For tests and the benchmark: how much painting each change cost.
    this.stats = { fullPaints: 0, regionPaints: 0, instancePaints: 0, frames: 0 };
    this.unsubscribe = null;
    viewer.addLayer((ctx) => this.draw(ctx), order);
  }

  // --- data -----------------------------------------------------------------

  // Follow `store` (an InstanceStore): paint what it holds now, then each
  // change ("change" events repaint one instance, "load" everything).
  attach(store) {
    this.unsubscribe?.();
    const onChange = (event) => this.onStoreChange(event.detail);
    const onLoad = () => this.setAll(store.all());
    store.addEventListener("change", onChange);
    store.addEventListener("load", onLoad);
    this.unsubscribe = () => {
      store.removeEventListener("change", onChange);
      store.removeEventListener("load", onLoad);
    };
    this.setAll(store.all());
  }

  // {kind: "create"|"update"|"remove"|"restore"|"replace", instance, previousId?}
  onStoreChange({ kind, instance, previousId }) {
    if (kind === "remove") {
      this.remove(instance.id);
      return;
    }
    if (kind === "replace" && previousId !== undefined) this.rename(previousId, instance.id);
    this.put(instance);
  }

  // A local instance got its server id: same mask, so nothing to repaint.
  rename(previousId, id) {
    const item = this.items.get(previousId);
    if (!item) return;
    this.items.delete(previousId);
    this.items.set(id, item);
    const highlight = this.highlights.get(previousId);
    this.highlights.delete(previousId);
    if (highlight) this.highlights.set(id, highlight);
    if (this.hovered === previousId) this.hovered = id;
    if (this.selected.delete(previousId)) {
      this.selected.add(id);
      this.emitSelection();
    }
  }

  // Replace everything (the first load): one full repaint.
  setAll(instances) {
    if (!instances.length && !this.items.size) return;
    this.items.clear();
    this.highlights.clear();
    for (const instance of instances) this.items.set(instance.id, this.itemOf(instance));
    this.repaintAll();
  }

  // Add or change one instance; repaints only where it was and where it is.
  put(instance) {
    const previous = this.items.get(instance.id);
    const item = this.itemOf(instance, previous);
    this.items.set(instance.id, item);
    if (previous && previous.crop === item.crop && previous.packed === item.packed) return;
    this.highlights.delete(instance.id);
    if (previous) this.markDirty(previous.rect);
    this.markDirty(item.rect);
  }

  remove(id) {
    const previous = this.items.get(id);
    if (!previous) return;
    this.items.delete(id);
    this.highlights.delete(id);
    if (this.selected.delete(id)) this.emitSelection();
    if (this.hovered === id) this.hovered = null;
    this.markDirty(previous.rect);
  }

  itemOf(instance, previous = null) {
    if (!this.size && instance.rle?.size) this.size = instance.rle.size;
    // The store may change an instance in place: compare what was decoded.
    const counts = instance.rle.counts;
    const sameMask = previous && previous.counts === counts;
    const crop = sameMask ? previous.crop : decodeInstanceCrop(instance.rle);
    const color = this.colorOf(instance);
    return { instance, counts, crop, color, packed: packColor(color), rect: cropRect(crop) };
  }

  colorOf(instance) {
    const label =
      this.labels.find((l) => l.id === instance.label_id) ??
      this.labels.find((l) => l.name === instance.label);
    return label?.color ?? FALLBACK_COLOR;
  }

  setLabels(labels) {
    this.labels = labels;
    for (const [id, item] of this.items) this.items.set(id, this.itemOf(item.instance, item));
    this.highlights.clear();
    this.repaintAll();
  }

  // --- hit testing ------------------------------------------------------------

  // Ids of the instances covering image pixel (x, y), topmost first.
  instancesAt(xyImage) {
    const x = Math.floor(xyImage.x);
    const y = Math.floor(xyImage.y);
    const found = [];
    const items = [...this.items.values()];
    for (let i = items.length - 1; i >= 0; i -= 1) {
      const { crop, instance } = items[i];
      const cx = x - crop.x0;
      const cy = y - crop.y0;
      if (cx < 0 || cy < 0 || cx >= crop.width || cy >= crop.height) continue;
      if (crop.data[cy * crop.width + cx]) found.push(instance.id);
    }
    return found;
  }

  // The id of the topmost instance covering image pixel (x, y), or null.
  instanceAt(x, y) {
    return this.instancesAt({ x, y })[0] ?? null;
  }

  // --- display ------------------------------------------------------------

  // Any of {opacity (0-1, the fill's), outline (bool), hidden (bool)}.
  setDisplay(changes) {
    Object.assign(this.display, changes);
    this.display.opacity = Math.min(1, Math.max(0, Number(this.display.opacity) || 0));
    this.viewer.requestDraw();
    this.dispatchEvent(new CustomEvent("displaychange", { detail: { ...this.display } }));
  }

  setSelected(ids) {
    const next = new Set([...(ids ?? [])].filter((id) => this.items.has(id)));
    const same = next.size === this.selected.size && [...next].every((id) => this.selected.has(id));
    if (same) return;
    this.selected = next;
    this.emitSelection();
  }

  emitSelection() {
    this.viewer.requestDraw();
    this.dispatchEvent(new CustomEvent("selectionchange", { detail: { ids: [...this.selected] } }));
  }

  setHovered(id) {
    if (this.hovered === id) return;
    this.hovered = id;
    this.viewer.requestDraw();
  }

  // [x, y, w, h] of an instance's bounding box in image pixels, or null.
  bboxOf(id) {
    const item = this.items.get(id);
    if (!item || !item.crop.area) return null;
    const { x0, y0, width, height } = item.crop;
    return [x0, y0, width, height];
  }

  // --- painting the tiles -----------------------------------------------------

  repaintAll() {
    this.tiles.clear();
    this.dirty = [];
    this.fullPaintPending = true;
    this.viewer.requestDraw();
  }

  markDirty(rect) {
    if (rect.x1 <= rect.x0 || rect.y1 <= rect.y0) return;
    if (this.dirty.length >= MAX_DIRTY_RECTS) this.fullPaintPending = true;
    else this.dirty.push(rect);
    this.viewer.requestDraw();
  }

  // Paint what changed since the last frame; called at the start of a frame.
  flush() {
    if (this.fullPaintPending) {
      this.fullPaintPending = false;
      this.dirty = [];
      this.tiles.clear();
      this.stats.fullPaints += 1;
      const [h, w] = this.size ?? [0, 0];
      this.paintRect({ x0: 0, y0: 0, x1: w, y1: h });
      return;
    }
    const dirty = this.dirty;
    this.dirty = [];
    for (const rect of dirty) this.paintRect(rect);
  }

  paintRect(rect) {
    const tx0 = Math.floor(rect.x0 / TILE);
    const ty0 = Math.floor(rect.y0 / TILE);
    const tx1 = Math.ceil(rect.x1 / TILE);
    const ty1 = Math.ceil(rect.y1 / TILE);
    for (let ty = ty0; ty < ty1; ty += 1) {
      for (let tx = tx0; tx < tx1; tx += 1) {
        const x0 = Math.max(rect.x0, tx * TILE);
        const y0 = Math.max(rect.y0, ty * TILE);
        const region = { x0, y0, x1: Math.min(rect.x1, (tx + 1) * TILE), y1: Math.min(rect.y1, (ty + 1) * TILE) };
        this.paintRegion(tx, ty, region);
      }
    }
  }

  // Repaint `region` (inside tile tx, ty) from every instance overlapping it.
  paintRegion(tx, ty, region) {
    const covering = [];
    for (const item of this.items.values()) if (intersects(item.rect, region)) covering.push(item);
    const key = `${tx},${ty}`;
    let tile = this.tiles.get(key);
    if (!tile) {
      if (!covering.length) return;
      tile = this.tileCreate(tx, ty);
      this.tiles.set(key, tile);
    }
    const x0 = Math.max(region.x0, tile.x);
    const y0 = Math.max(region.y0, tile.y);
    const width = Math.min(region.x1, tile.x + tile.width) - x0;
    const height = Math.min(region.y1, tile.y + tile.height) - y0;
    if (width <= 0 || height <= 0) return;
    const fill = new ImageData(width, height);
    const edge = new ImageData(width, height);
    const fill32 = new Uint32Array(fill.data.buffer);
    const edge32 = new Uint32Array(edge.data.buffer);
    for (const item of covering) {
      paintCrop(item, fill32, edge32, x0, y0, width, height);
      this.stats.instancePaints += 1;
    }
    tile.fillCtx.putImageData(fill, x0 - tile.x, y0 - tile.y);
    tile.edgeCtx.putImageData(edge, x0 - tile.x, y0 - tile.y);
    this.stats.regionPaints += 1;
  }

  tileCreate(tx, ty) {
    const [h, w] = this.size ?? [TILE, TILE];
    const x = tx * TILE;
    const y = ty * TILE;
    const width = Math.max(1, Math.min(TILE, w - x));
    const height = Math.max(1, Math.min(TILE, h - y));
    const fill = makeCanvas(width, height);
    const edge = makeCanvas(width, height);
    return {
      x, y, width, height, fill, edge,
      fillCtx: fill.getContext("2d"),
      edgeCtx: edge.getContext("2d"),
    };
  }

  // --- a frame ----------------------------------------------------------------

  draw(ctx) {
    this.flush();
    this.stats.frames += 1;
    const { opacity, outline, hidden } = this.display;
    if (hidden) return;
    const view = visibleRect(ctx);
    ctx.imageSmoothingEnabled = false;
    for (const tile of this.tiles.values()) {
      const rect = { x0: tile.x, y0: tile.y, x1: tile.x + tile.width, y1: tile.y + tile.height };
      if (!intersects(rect, view)) continue;
      if (!outline && opacity > 0) {
        ctx.globalAlpha = opacity;
        ctx.drawImage(tile.fill, tile.x, tile.y);
      }
      ctx.globalAlpha = EDGE_ALPHA;
      ctx.drawImage(tile.edge, tile.x, tile.y);
    }
    ctx.globalAlpha = 1;
    for (const id of this.selected) this.drawHighlight(ctx, id, view);
    if (this.hovered !== null && !this.selected.has(this.hovered)) this.drawHighlight(ctx, this.hovered, view);
  }

  drawHighlight(ctx, id, view) {
    const item = this.items.get(id);
    if (!item || !item.crop.area || !intersects(item.rect, view)) return;
    let highlight = this.highlights.get(id);
    if (highlight?.crop !== item.crop || highlight?.color !== item.color) {
      const canvas = maskBitmap(item.crop, item.color, { fill: 0.7, edge: 1, edgeColor: "#ffffff" });
      highlight = { crop: item.crop, color: item.color, canvas };
      this.highlights.set(id, highlight);
    }
    if (highlight.canvas) ctx.drawImage(highlight.canvas, item.crop.x0, item.crop.y0);
  }
}

// Paint one instance's crop into a region's fill and edge pixels (Uint32 RGBA views).
function paintCrop(item, fill32, edge32, x0, y0, width, height) {
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

// The image-frame rectangle the canvas shows under ctx's current transform.
function visibleRect(ctx) {
  const inverse = ctx.getTransform().inverse();
  const a = inverse.transformPoint(new DOMPoint(0, 0));
  const b = inverse.transformPoint(new DOMPoint(ctx.canvas.width, ctx.canvas.height));
  return {
    x0: Math.min(a.x, b.x), y0: Math.min(a.y, b.y), x1: Math.max(a.x, b.x), y1: Math.max(a.y, b.y),
  };
}
