// Raw channel samples to screen colours: lookup tables and additive compositing.
//
// A tile is raw samples (one typed array per channel, in the image's dtype);
// each visible channel maps a sample v to t = (v - min) / (max - min),
// clamped to [0, 1], picks entry round(255 t) of its lookup table (LUT) and
// adds that colour to the pixel; the sums saturate at 255. NaN is black.

export const SOLID_COLORS = {
  grey: [255, 255, 255],
  red: [255, 0, 0],
  green: [0, 255, 0],
  blue: [0, 0, 255],
  cyan: [0, 255, 255],
  magenta: [255, 0, 255],
  yellow: [255, 255, 0],
};

// Gradient stops [t, r, g, b]; linear in between.
const GRADIENTS = {
  // Close to ImageJ's "Fire": black, violet, red, orange, yellow, white.
  fire: [
    [0, 0, 0, 0],
    [0.2, 85, 0, 190],
    [0.4, 190, 20, 120],
    [0.55, 240, 70, 30],
    [0.75, 255, 170, 0],
    [0.9, 255, 235, 80],
    [1, 255, 255, 255],
  ],
  // matplotlib's viridis at nine points.
  viridis: [
    [0, 68, 1, 84],
    [0.125, 71, 44, 122],
    [0.25, 59, 81, 139],
    [0.375, 44, 113, 142],
    [0.5, 33, 144, 141],
    [0.625, 39, 173, 129],
    [0.75, 92, 200, 99],
    [0.875, 170, 220, 50],
    [1, 253, 231, 37],
  ],
};

export const COLORS = [...Object.keys(SOLID_COLORS), ...Object.keys(GRADIENTS)];

const lutCache = new Map();

// 256 x (r, g, b) for a colour name (see COLORS).
export function colorLut(name) {
  if (lutCache.has(name)) return lutCache.get(name);
  const lut = new Uint8Array(256 * 3);
  const solid = SOLID_COLORS[name] ?? (GRADIENTS[name] ? null : SOLID_COLORS.grey);
  for (let i = 0; i < 256; i += 1) {
    const rgb = solid ? solid.map((c) => (c * i) / 255) : gradientAt(GRADIENTS[name], i / 255);
    for (let k = 0; k < 3; k += 1) lut[i * 3 + k] = Math.round(rgb[k]);
  }
  lutCache.set(name, lut);
  return lut;
}

function gradientAt(stops, t) {
  for (let i = 1; i < stops.length; i += 1) {
    const [t1, ...c1] = stops[i];
    if (t <= t1) {
      const [t0, ...c0] = stops[i - 1];
      const f = t1 > t0 ? (t - t0) / (t1 - t0) : 0;
      return c0.map((c, k) => c + f * (c1[k] - c));
    }
  }
  return stops[stops.length - 1].slice(1);
}

// A CSS gradient showing a LUT from dark to bright (for swatches).
export function swatch(name) {
  const lut = colorLut(name);
  const stops = [0, 64, 128, 192, 255].map((i) => `rgb(${lut[i * 3]}, ${lut[i * 3 + 1]}, ${lut[i * 3 + 2]})`);
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

// Typed array constructors for the dtypes the server sends (X-Tile-Dtype).
export const DTYPE_ARRAYS = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
};

// Composite `planes` (one typed array of width * height samples per channel)
// into `rgba` (a Uint8ClampedArray of width * height * 4) with `channels`:
// [{visible, color, min, max}] per channel index.
export function compositeInto(rgba, planes, channels) {
  rgba.fill(0);
  const n = rgba.length >> 2;
  for (let c = 0; c < planes.length; c += 1) {
    const setting = channels[c];
    if (!setting || !setting.visible) continue;
    addChannel(rgba, planes[c], n, colorLut(setting.color), setting.min, setting.max);
  }
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
}

function addChannel(rgba, data, n, lut, min, max) {
  const k = max > min ? 255 / (max - min) : 0;
  for (let i = 0; i < n; i += 1) {
    const v = data[i];
    let index;
    if (k === 0) index = v >= max ? 255 : 0;
    else {
      const t = (v - min) * k;
      // NaN fails both tests and lands on 0 (black).
      index = t >= 255 ? 255 : t > 0 ? (t + 0.5) | 0 : 0;
    }
    const o = i << 2;
    const l = index * 3;
    rgba[o] += lut[l];
    rgba[o + 1] += lut[l + 1];
    rgba[o + 2] += lut[l + 2];
  }
}
