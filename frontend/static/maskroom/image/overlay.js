// Coloured bitmaps of masks for the viewer: a translucent fill with an opaque
// outline, built once per mask at the size of its bounding box.

export function parseColor(hex) {
  const match = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  const value = match ? parseInt(match[1], 16) : 0xff0000;
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

// crop: {x0, y0, width, height, data} from rle.decodeCrop; returns a canvas or null.
// edgeColor defaults to the fill colour; the proposal uses white to stand out.
export function maskBitmap(crop, color, { fill = 0.4, edge = 0.95, edgeColor = null } = {}) {
  const { width, height, data } = crop;
  if (!width || !height) return null;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(width, height);
  const [r, g, b] = parseColor(color);
  const [er, eg, eb] = parseColor(edgeColor ?? color);
  const fillAlpha = Math.round(fill * 255);
  const edgeAlpha = Math.round(edge * 255);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const i = y * width + x;
      if (!data[i]) continue;
      const isEdge =
        x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
        !data[i - 1] || !data[i + 1] || !data[i - width] || !data[i + width];
      const o = i * 4;
      pixels.data[o] = isEdge ? er : r;
      pixels.data[o + 1] = isEdge ? eg : g;
      pixels.data[o + 2] = isEdge ? eb : b;
      pixels.data[o + 3] = isEdge ? edgeAlpha : fillAlpha;
    }
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}
