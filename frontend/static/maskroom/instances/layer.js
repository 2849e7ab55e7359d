// The saved instances drawn over the image, fast with thousands of them.
//
// Each instance's RLE is decoded once into a crop of its bounding box whose
// pixels are 0 (outside), 1 (inside) or 2 (edge: inside, with a 4-neighbour
// outside). The crops are painted into a pyramid of tiles (tiles.js),
// made when first on screen; a frame draws each visible tile with one
// drawImage per canvas (fill, edge) under the viewer's transform. Opacity,
// outline-only and hide act when compositing (globalAlpha, skipping a
// canvas), so changing them repaints nothing; a change to one instance
// repaints only the rectangles it covered before and covers now, from the
// instances overlapping them, in paint order (the store's order, later on top).
//
// Frames: everything here is in xyImage (full-resolution image pixels).

import { TilePyramid, intersects } from "./tiles.js";
import { maskBitmap, parseColor } from "../image/overlay.js";
import { decodeCrop } from "./rle.js";

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

// Proposals awaiting review are drawn faint.
const PROPOSAL_ALPHA = 110;

function packColor(hex, alpha = 255) {
  const [r, g, b] = parseColor(hex);
  // ImageData is RGBA bytes; a little-endian Uint32 view reads them as ABGR.
  return ((alpha << 24) | (b << 16) | (g << 8) | r) >>> 0;
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
    this.items = new Map(); // id -> {instance, crop, color, packed, rect}, in paint order
    this.size = null; // [h, w] of the image, from the RLEs
    this.dirty = []; // rectangles waiting to be repainted
    this.fullPaintPending = false;
    this.display = { ...DEFAULT_DISPLAY };
    this.selected = new Set();
    this.hovered = null;
    this.highlights = new Map(); // id -> {crop, canvas}: selected and hovered bitmaps
    // For tests and the benchmark: how much painting each change cost.
    // fullPaints: everything thrown away (a load); tilePaints: whole tiles
    // painted; regionPaints/instancePaints: rectangles and crops painted.
    // decodeMs and fullPaintMs: the last load's RLE decoding and first painting.
    this.stats = {
      fullPaints: 0, tilePaints: 0, regionPaints: 0, instancePaints: 0, frames: 0, decodeMs: 0, fullPaintMs: 0,
    };
    this.pyramid = new TilePyramid({ items: () => this.items.values(), stats: this.stats });
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
    const start = performance.now();
    this.items.clear();
    this.highlights.clear();
    for (const instance of instances) this.items.set(instance.id, this.itemOf(instance));
    this.stats.decodeMs = performance.now() - start;
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
    const packed = packColor(color, instance.state === "proposed" ? PROPOSAL_ALPHA : 255);
    return { instance, counts, crop, color, packed, rect: cropRect(crop) };
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

  // Apply what changed since the last frame to the cached tiles.
  flush() {
    if (this.size) this.pyramid.setSize(this.size);
    if (this.fullPaintPending) {
      this.fullPaintPending = false;
      this.dirty = [];
      this.pyramid.clear();
      if (this.items.size) this.stats.fullPaints += 1;
      return true;
    }
    const dirty = this.dirty;
    this.dirty = [];
    for (const rect of dirty) this.pyramid.invalidate(rect);
    return false;
  }

  // --- a frame ----------------------------------------------------------------

  draw(ctx) {
    const start = performance.now();
    const full = this.flush();
    this.stats.frames += 1;
    const { opacity, outline, hidden } = this.display;
    if (hidden || !this.items.size) return;
    const transform = ctx.getTransform();
    const view = visibleRect(ctx, transform);
    const level = TilePyramid.levelFor(Math.hypot(transform.a, transform.b));
    const tiles = this.pyramid.visibleTiles(level, view);
    if (full) this.stats.fullPaintMs = performance.now() - start;
    ctx.imageSmoothingEnabled = false;
    for (const { fill, edge, rect, width, height, s } of tiles) {
      if (!outline && opacity > 0) {
        ctx.globalAlpha = opacity;
        ctx.drawImage(fill, rect.x0, rect.y0, width * s, height * s);
      }
      ctx.globalAlpha = EDGE_ALPHA;
      ctx.drawImage(edge, rect.x0, rect.y0, width * s, height * s);
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

// The image-frame rectangle the canvas shows under `transform`.
function visibleRect(ctx, transform) {
  const inverse = transform.inverse();
  const a = inverse.transformPoint(new DOMPoint(0, 0));
  const b = inverse.transformPoint(new DOMPoint(ctx.canvas.width, ctx.canvas.height));
  return {
    x0: Math.min(a.x, b.x), y0: Math.min(a.y, b.y), x1: Math.max(a.x, b.x), y1: Math.max(a.y, b.y),
  };
}
