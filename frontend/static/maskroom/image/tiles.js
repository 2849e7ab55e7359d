// The image as a tile pyramid: loads only the tiles on screen, at the level
// that matches the zoom, and draws them composited with the display settings.
//
// Levels and tiles are as GET /api/images/{id}/ describes them (`pyramid`,
// see docs/api.md): level k is the image halved k times; its tile (tx, ty)
// covers level pixels [tx T, (tx + 1) T) x [ty T, (ty + 1) T), that is
// image pixels 2^k times that. A tile body is raw samples, (C, h, w) in the
// image's dtype, little-endian.
//
// Smoothness: tiles are fetched a few at a time, nearest the centre of the
// view first, and requests no longer on screen are dropped before they start.
// Each tile is composited once into a canvas of its own and redrawn from it;
// a change of display settings recomposites the tiles on screen within a
// time budget per frame. While a tile loads, the best coarser tile already
// here is drawn in its place, and the coarsest level (one tile) is loaded
// first so there always is one.
//
// Events: "loadingchange" {loading} when tiles start and stop loading.

import { DTYPE_ARRAYS, compositeInto } from "./composite.js";

const MAX_PARALLEL = 6; // a browser opens at most six connections to one host
const MAX_TILES = 160; // cached tiles: up to ~1 MiB of samples and 1 MiB of pixels each
const COMPOSITE_BUDGET_MS = 24; // recompositing per frame; the rest waits a frame
const RETRY_MS = 3000; // after a failed tile request

export class TileSource extends EventTarget {
  // pyramid: the image detail's `pyramid`; channels(): the current
  // [{visible, color, min, max}] per channel.
  constructor({ pyramid, viewer, channels }) {
    super();
    this.pyramid = pyramid;
    this.viewer = viewer;
    this.channels = channels;
    this.version = 0; // of the display settings; a tile composited at another is stale
    this.tiles = new Map(); // key -> {level, tx, ty, width, height, planes, canvas, version}
    this.queue = []; // keys wanted and not yet requested, best first
    this.inFlight = new Map(); // key -> AbortController
    this.failed = new Map(); // key -> time (ms) after which to try again
    this.requested = 0; // every tile request made, for tests and benchmarks
    this.waiters = [];
    this.wanted = new Set();
    this.top = pyramid.levels.length - 1;
    this.request(this.top, 0, 0);
  }

  // The display settings changed: recomposite what is drawn.
  invalidate() {
    this.version += 1;
    this.viewer.requestDraw();
  }

  // The level whose pixels are at least as fine as the screen's.
  levelFor(viewer) {
    const ratio = viewer.canvas.width / Math.max(1, viewer.canvas.clientWidth);
    const imagePxPerDevicePx = 1 / (viewer.scale * ratio);
    const level = Math.floor(Math.log2(Math.max(1, imagePxPerDevicePx)) + 1e-9);
    return Math.min(this.top, Math.max(0, level));
  }

  // Tiles of `level` that meet the visible part of the image, centre first.
  visibleTiles(viewer, level) {
    const { tile_size: size, levels } = this.pyramid;
    const { columns, rows } = levels[level];
    const span = size * 2 ** level; // image pixels per tile
    const a = viewer.screenToImage(...corner(viewer, 0));
    const b = viewer.screenToImage(...corner(viewer, 1));
    const tx0 = clamp(Math.floor(a.x / span), 0, columns - 1);
    const ty0 = clamp(Math.floor(a.y / span), 0, rows - 1);
    const tx1 = clamp(Math.floor(b.x / span), 0, columns - 1);
    const ty1 = clamp(Math.floor(b.y / span), 0, rows - 1);
    if (b.x < 0 || b.y < 0 || a.x > viewer.width || a.y > viewer.height) return [];
    const cx = (a.x + b.x) / 2 / span - 0.5;
    const cy = (a.y + b.y) / 2 / span - 0.5;
    const found = [];
    for (let ty = ty0; ty <= ty1; ty += 1) {
      for (let tx = tx0; tx <= tx1; tx += 1) found.push([tx, ty, (tx - cx) ** 2 + (ty - cy) ** 2]);
    }
    return found.sort((p, q) => p[2] - q[2]).map(([tx, ty]) => [tx, ty]);
  }

  // Draw the visible tiles; ctx has the identity transform (device pixels).
  draw(ctx, viewer) {
    const level = this.levelFor(viewer);
    const visible = this.visibleTiles(viewer, level);
    const started = performance.now();
    this.wanted = new Set(visible.map(([tx, ty]) => key(level, tx, ty)));
    ctx.save();
    clipToImage(ctx, viewer);
    // Smooth when a tile pixel is smaller than a screen pixel, sharp when zoomed in.
    ctx.imageSmoothingEnabled = viewer.scale * 2 ** level * devicePixels(viewer) < 2;
    let stale = false;
    for (const [tx, ty] of visible) {
      const tile = this.tiles.get(key(level, tx, ty));
      if (!tile) {
        this.request(level, tx, ty);
        this.drawFallback(ctx, viewer, level, tx, ty, started);
        continue;
      }
      stale = !this.refresh(tile, started) || stale;
      this.touch(tile);
      drawRegion(ctx, viewer, tile, tileRect(this.pyramid, level, tx, ty));
    }
    ctx.restore();
    this.schedule();
    this.evict();
    if (stale) viewer.requestDraw(); // more recompositing next frame
    this.settle();
  }

  // Composite `tile` with the current settings unless the frame's budget is
  // spent (a tile never composited is done regardless); false if left stale.
  refresh(tile, started) {
    if (tile.version === this.version) return true;
    if (tile.canvas && performance.now() - started > COMPOSITE_BUDGET_MS) return false;
    this.composite(tile);
    return true;
  }

  composite(tile) {
    if (!tile.canvas) {
      tile.canvas = document.createElement("canvas");
      tile.canvas.width = tile.width;
      tile.canvas.height = tile.height;
      tile.pixels = new ImageData(tile.width, tile.height);
    }
    compositeInto(tile.pixels.data, tile.planes, this.channels());
    tile.canvas.getContext("2d").putImageData(tile.pixels, 0, 0);
    tile.version = this.version;
  }

  // Draw the part of the nearest loaded coarser tile that covers (level, tx, ty).
  drawFallback(ctx, viewer, level, tx, ty, started) {
    const rect = tileRect(this.pyramid, level, tx, ty);
    for (let up = level + 1; up <= this.top; up += 1) {
      const shift = up - level;
      const parent = this.tiles.get(key(up, tx >> shift, ty >> shift));
      if (!parent) continue;
      this.refresh(parent, started);
      this.touch(parent);
      drawRegion(ctx, viewer, parent, rect, tileRect(this.pyramid, up, tx >> shift, ty >> shift));
      return;
    }
  }

  request(level, tx, ty) {
    const k = key(level, tx, ty);
    if (this.tiles.has(k) || this.inFlight.has(k)) return;
    if (this.failed.has(k) && performance.now() < this.failed.get(k)) return;
    if (!this.queue.includes(k)) this.queue.push(k);
  }

  // Start queued requests still on screen (or of the coarsest level), a few at a time.
  schedule() {
    this.queue = this.queue.filter((k) => this.wanted.has(k) || k.startsWith(`${this.top}/`));
    while (this.inFlight.size < MAX_PARALLEL && this.queue.length) this.fetchTile(this.queue.shift());
    this.setLoading(this.inFlight.size > 0 || this.queue.length > 0);
  }

  async fetchTile(k) {
    const [level, tx, ty] = k.split("/").map(Number);
    const controller = new AbortController();
    this.inFlight.set(k, controller);
    this.requested += 1;
    const url = this.pyramid.tile_url.replace("{level}", level).replace("{x}", tx).replace("{y}", ty);
    try {
      const response = await fetch(url, { credentials: "same-origin", signal: controller.signal });
      if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
      const [channels, height, width] = response.headers.get("X-Tile-Shape").split(",").map(Number);
      const Array_ = DTYPE_ARRAYS[response.headers.get("X-Tile-Dtype")];
      if (!Array_) throw new Error(`unknown dtype ${response.headers.get("X-Tile-Dtype")}`);
      const buffer = await response.arrayBuffer();
      const n = width * height;
      const planes = [];
      for (let c = 0; c < channels; c += 1) planes.push(new Array_(buffer, c * n * Array_.BYTES_PER_ELEMENT, n));
      this.tiles.set(k, { level, tx, ty, width, height, planes, canvas: null, version: -1 });
      this.failed.delete(k);
    } catch (err) {
      if (err.name !== "AbortError") {
        // Shown as the coarser tile meanwhile; tried again when next drawn after a pause.
        console.warn(`tile ${k}: ${err.message}`);
        const final = err.status >= 400 && err.status < 500; // asking again will not help
        this.failed.set(k, final ? Infinity : performance.now() + RETRY_MS);
        if (!final) setTimeout(() => this.viewer.requestDraw(), RETRY_MS);
      }
    } finally {
      this.inFlight.delete(k);
      this.viewer.requestDraw();
    }
  }

  touch(tile) {
    const k = key(tile.level, tile.tx, tile.ty);
    this.tiles.delete(k);
    this.tiles.set(k, tile);
  }

  // Drop the least recently drawn tiles beyond MAX_TILES (never the coarsest level).
  evict() {
    for (const [k, tile] of this.tiles) {
      if (this.tiles.size <= MAX_TILES) break;
      if (tile.level !== this.top && !this.wanted.has(k)) this.tiles.delete(k);
    }
  }

  setLoading(loading) {
    if (loading !== this.loading) {
      this.loading = loading;
      this.dispatchEvent(new CustomEvent("loadingchange", { detail: { loading } }));
    }
  }

  // Resolve waiters once every tile on screen is here (or failed).
  settle() {
    if (!this.waiters.length) return;
    const missing = [...this.wanted].some((k) => !this.tiles.has(k) && !this.failed.has(k));
    if (missing || this.loading) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  // A promise for the moment every tile on screen has been drawn.
  loaded() {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.viewer.requestDraw();
    });
  }
}

function key(level, tx, ty) {
  return `${level}/${tx}/${ty}`;
}

function clamp(value, lo, hi) {
  return Math.min(hi, Math.max(lo, value));
}

function devicePixels(viewer) {
  return viewer.canvas.width / Math.max(1, viewer.canvas.clientWidth);
}

// The viewport's top-left (0) or bottom-right (1) corner in client pixels.
function corner(viewer, which) {
  const rect = viewer.canvas.getBoundingClientRect();
  return which ? [rect.right, rect.bottom] : [rect.left, rect.top];
}

// A tile's rectangle in image pixels (the last row and column may overhang
// the image by less than one level pixel: the drawing is clipped to the image).
function tileRect(pyramid, level, tx, ty) {
  const size = pyramid.tile_size;
  const { width, height } = pyramid.levels[level];
  const f = 2 ** level;
  const x0 = tx * size;
  const y0 = ty * size;
  return {
    x0: x0 * f,
    y0: y0 * f,
    x1: Math.min(x0 + size, width) * f,
    y1: Math.min(y0 + size, height) * f,
  };
}

// Draw `target` (image pixels) from `tile`, whose canvas covers `source`
// (image pixels; the tile's own rectangle when omitted). The destination is
// snapped to device pixels so that neighbouring tiles meet without seams.
function drawRegion(ctx, viewer, tile, target, source = target) {
  const ratio = devicePixels(viewer);
  const toX = (x) => Math.round(ratio * (viewer.offsetX + x * viewer.scale));
  const toY = (y) => Math.round(ratio * (viewer.offsetY + y * viewer.scale));
  const sx = ((target.x0 - source.x0) / (source.x1 - source.x0)) * tile.width;
  const sy = ((target.y0 - source.y0) / (source.y1 - source.y0)) * tile.height;
  const sw = ((target.x1 - target.x0) / (source.x1 - source.x0)) * tile.width;
  const sh = ((target.y1 - target.y0) / (source.y1 - source.y0)) * tile.height;
  const dx = toX(target.x0);
  const dy = toY(target.y0);
  ctx.drawImage(tile.canvas, sx, sy, sw, sh, dx, dy, toX(target.x1) - dx, toY(target.y1) - dy);
}

function clipToImage(ctx, viewer) {
  const ratio = devicePixels(viewer);
  ctx.beginPath();
  ctx.rect(
    ratio * viewer.offsetX,
    ratio * viewer.offsetY,
    ratio * viewer.width * viewer.scale,
    ratio * viewer.height * viewer.scale,
  );
  ctx.clip();
}
