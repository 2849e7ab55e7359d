// Mask rasters for the editing tools: paint and erase brush strokes, fill a
// polygon, merge two masks, and encode the result as COCO RLE (rle.js).
//
// A mask is a crop in the image frame, as rle.decodeCrop returns it:
// {x0, y0, width, height, area, data}, `data` row-major 0/1 (any non-zero is
// inside), covering [x0, x0 + width) x [y0, y0 + height) of the image; the
// empty mask has width = height = 0. Pixel (x, y) is inside a shape when its
// centre (x + 0.5, y + 0.5) is. Operations return new crops and never build
// the full image frame, so they stay cheap on very large images.
// No DOM here: the module also runs under node for the tests.

import { decodeCrop, encodeCounts } from "./rle.js";

export const EMPTY = Object.freeze({ x0: 0, y0: 0, width: 0, height: 0, area: 0, data: new Uint8Array(0) });

export function cropFromRle(rle) {
  return decodeCrop(rle);
}

export function isEmpty(crop) {
  return !crop || crop.width === 0 || crop.height === 0 || countArea(crop) === 0;
}

export function countArea(crop) {
  let area = 0;
  for (let i = 0; i < crop.data.length; i += 1) if (crop.data[i]) area += 1;
  return area;
}

// A blank crop covering the rectangle [x0, x1) x [y0, y1).
function blank(x0, y0, x1, y1) {
  const width = Math.max(0, x1 - x0);
  const height = Math.max(0, y1 - y0);
  return { x0, y0, width, height, area: 0, data: new Uint8Array(width * height) };
}

// `crop` copied into a crop covering at least [x0, x1) x [y0, y1) as well.
function grownTo(crop, x0, y0, x1, y1) {
  if (crop.width && crop.height) {
    x0 = Math.min(x0, crop.x0);
    y0 = Math.min(y0, crop.y0);
    x1 = Math.max(x1, crop.x0 + crop.width);
    y1 = Math.max(y1, crop.y0 + crop.height);
  }
  const out = blank(x0, y0, x1, y1);
  for (let y = 0; y < crop.height; y += 1) {
    const src = y * crop.width;
    const dst = (y + crop.y0 - y0) * out.width + (crop.x0 - x0);
    for (let x = 0; x < crop.width; x += 1) if (crop.data[src + x]) out.data[dst + x] = 1;
  }
  return out;
}

// The crop shrunk to the bounding box of its pixels, with its area.
export function tight(crop) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  let area = 0;
  for (let y = 0; y < crop.height; y += 1) {
    for (let x = 0; x < crop.width; x += 1) {
      if (!crop.data[y * crop.width + x]) continue;
      area += 1;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  if (!area) return { ...EMPTY, data: new Uint8Array(0) };
  const out = blank(crop.x0 + x0, crop.y0 + y0, crop.x0 + x1 + 1, crop.y0 + y1 + 1);
  for (let y = y0; y <= y1; y += 1) {
    for (let x = x0; x <= x1; x += 1) {
      if (crop.data[y * crop.width + x]) out.data[(y - y0) * out.width + (x - x0)] = 1;
    }
  }
  out.area = area;
  return out;
}

// Pixels whose centre lies within `radius` of the polyline `points`
// ([{x, y}, ...] in image pixels; one point paints a disc), clipped to the
// image (`size` = [h, w]). value 1 paints, 0 erases. Returns a tight crop.
export function paintStroke(crop, points, radius, value, size) {
  if (!points.length || radius <= 0) return tight(crop);
  const [h, w] = size;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const bx0 = Math.max(0, Math.floor(Math.min(...xs) - radius));
  const by0 = Math.max(0, Math.floor(Math.min(...ys) - radius));
  const bx1 = Math.min(w, Math.ceil(Math.max(...xs) + radius) + 1);
  const by1 = Math.min(h, Math.ceil(Math.max(...ys) + radius) + 1);
  if (bx1 <= bx0 || by1 <= by0) return tight(crop);
  const out = value ? grownTo(crop, bx0, by0, bx1, by1) : grownTo(crop, crop.x0, crop.y0, crop.x0, crop.y0);
  const segments = points.length === 1 ? [[points[0], points[0]]] : points.slice(1).map((p, i) => [points[i], p]);
  const r2 = radius * radius;
  for (const [a, b] of segments) {
    const sx0 = Math.max(bx0, Math.floor(Math.min(a.x, b.x) - radius), out.x0);
    const sy0 = Math.max(by0, Math.floor(Math.min(a.y, b.y) - radius), out.y0);
    const sx1 = Math.min(bx1, Math.ceil(Math.max(a.x, b.x) + radius) + 1, out.x0 + out.width);
    const sy1 = Math.min(by1, Math.ceil(Math.max(a.y, b.y) + radius) + 1, out.y0 + out.height);
    for (let y = sy0; y < sy1; y += 1) {
      for (let x = sx0; x < sx1; x += 1) {
        if (distanceSquaredToSegment(x + 0.5, y + 0.5, a, b) <= r2) {
          out.data[(y - out.y0) * out.width + (x - out.x0)] = value ? 1 : 0;
        }
      }
    }
  }
  return tight(out);
}

function distanceSquaredToSegment(px, py, a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const length2 = dx * dx + dy * dy;
  let t = length2 ? ((px - a.x) * dx + (py - a.y) * dy) / length2 : 0;
  t = Math.max(0, Math.min(1, t));
  const ex = a.x + t * dx - px;
  const ey = a.y + t * dy - py;
  return ex * ex + ey * ey;
}

// The pixels whose centre lies inside the polygon ([{x, y}, ...], even-odd
// rule), clipped to the image (`size` = [h, w]). Returns a tight crop.
export function fillPolygon(points, size) {
  const [h, w] = size;
  if (points.length < 3) return { ...EMPTY, data: new Uint8Array(0) };
  const ys = points.map((p) => p.y);
  const xs = points.map((p) => p.x);
  const y0 = Math.max(0, Math.floor(Math.min(...ys)));
  const y1 = Math.min(h, Math.ceil(Math.max(...ys)) + 1);
  const x0 = Math.max(0, Math.floor(Math.min(...xs)));
  const x1 = Math.min(w, Math.ceil(Math.max(...xs)) + 1);
  if (x1 <= x0 || y1 <= y0) return { ...EMPTY, data: new Uint8Array(0) };
  const out = blank(x0, y0, x1, y1);
  for (let y = y0; y < y1; y += 1) {
    const cy = y + 0.5;
    const crossings = [];
    for (let i = 0; i < points.length; i += 1) {
      const a = points[i];
      const b = points[(i + 1) % points.length];
      if ((a.y <= cy && b.y > cy) || (b.y <= cy && a.y > cy)) {
        crossings.push(a.x + ((cy - a.y) / (b.y - a.y)) * (b.x - a.x));
      }
    }
    crossings.sort((p, q) => p - q);
    for (let i = 0; i + 1 < crossings.length; i += 2) {
      // Pixels with crossings[i] <= x + 0.5 < crossings[i + 1].
      const from = Math.max(x0, Math.ceil(crossings[i] - 0.5));
      const to = Math.min(x1, Math.ceil(crossings[i + 1] - 0.5));
      const row = (y - y0) * out.width - x0;
      for (let x = from; x < to; x += 1) out.data[row + x] = 1;
    }
  }
  return tight(out);
}

// Every pixel of `a` or `b`.
export function union(a, b) {
  if (isEmpty(a)) return tight(b);
  if (isEmpty(b)) return tight(a);
  const out = grownTo(a, b.x0, b.y0, b.x0 + b.width, b.y0 + b.height);
  for (let y = 0; y < b.height; y += 1) {
    const dst = (y + b.y0 - out.y0) * out.width + (b.x0 - out.x0);
    for (let x = 0; x < b.width; x += 1) if (b.data[y * b.width + x]) out.data[dst + x] = 1;
  }
  return tight(out);
}

// Whether pixel (x, y) of the image is inside the mask.
export function contains(crop, x, y) {
  const cx = Math.floor(x) - crop.x0;
  const cy = Math.floor(y) - crop.y0;
  return cx >= 0 && cy >= 0 && cx < crop.width && cy < crop.height && crop.data[cy * crop.width + cx] !== 0;
}

// COCO compressed RLE of the crop in a full image of `size` = [h, w]. Runs
// are counted on the crop's columns only; the columns and rows around it are
// added as arithmetic, so the cost does not grow with the image.
export function toRle(crop, size) {
  const [h, w] = size;
  if (crop.width && (crop.x0 < 0 || crop.y0 < 0 || crop.x0 + crop.width > w || crop.y0 + crop.height > h)) {
    throw new Error("the mask lies outside the image");
  }
  const counts = [];
  let value = 0;
  let run = 0;
  const add = (v, n) => {
    if (n <= 0) return;
    if (v !== value) {
      counts.push(run);
      run = 0;
      value = v;
    }
    run += n;
  };
  add(0, crop.x0 * h); // the empty columns left of the crop
  const below = h - crop.y0 - crop.height;
  for (let x = 0; x < crop.width; x += 1) {
    add(0, crop.y0);
    for (let y = 0; y < crop.height; y += 1) add(crop.data[y * crop.width + x] ? 1 : 0, 1);
    add(0, below);
  }
  add(0, (w - crop.x0 - crop.width) * h); // and right of it
  counts.push(run);
  return { size: [h, w], counts: encodeCounts(counts) };
}
