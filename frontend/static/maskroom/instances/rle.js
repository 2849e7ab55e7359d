// COCO run-length encoding of binary masks, as pycocotools writes it.
//
// A mask of size [h, w] is read column-major (x outer, y inner); `counts` are
// alternating run lengths starting with a run of zeros. The compressed string
// form (rleToString/rleFrString in pycocotools' maskApi.c) stores each count,
// from the fourth on as the difference to the count two places earlier, in
// little-endian 5-bit groups: bit 0x20 means "more groups follow", bit 0x10 of
// the last group is the sign, and 48 is added to make each group printable.
// No DOM here: the module also runs under node for the tests.

export function decodeCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= text.length) throw new Error("RLE counts string ends inside a number");
      const c = text.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10) !== 0) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

export function encodeCounts(counts) {
  let out = "";
  for (let i = 0; i < counts.length; i += 1) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32;
      x = Math.floor(x / 32);
      more = (c & 0x10) !== 0 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out += String.fromCharCode(c + 48);
    }
  }
  return out;
}

function countsOf(rle) {
  return typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts;
}

// The mask as a row-major Uint8Array of 0/1, h*w long. For small images and tests.
export function decodeMask(rle) {
  const [h, w] = rle.size;
  const mask = new Uint8Array(h * w);
  let index = 0;
  let value = 0;
  for (const run of countsOf(rle)) {
    if (value) {
      for (let i = index; i < index + run; i += 1) {
        const x = Math.floor(i / h);
        mask[(i - x * h) * w + x] = 1;
      }
    }
    index += run;
    value ^= 1;
  }
  if (index !== h * w) throw new Error(`RLE covers ${index} pixels, the mask has ${h * w}`);
  return mask;
}

// Calls visit(x, y0, y1) for each vertical run of foreground [y0, y1) in column x.
function forEachColumnRun(counts, h, visit) {
  let index = 0;
  let value = 0;
  for (const run of counts) {
    if (value && run > 0) {
      let start = index;
      const end = index + run;
      while (start < end) {
        const x = Math.floor(start / h);
        const y0 = start - x * h;
        const y1 = Math.min(h, y0 + (end - start));
        visit(x, y0, y1);
        start += y1 - y0;
      }
    }
    index += run;
    value ^= 1;
  }
}

// The mask cropped to its bounding box, row-major, without building the full
// frame (images can be tens of thousands of pixels wide). Empty masks give area 0.
export function decodeCrop(rle) {
  const [h] = rle.size;
  const counts = countsOf(rle);
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  let area = 0;
  forEachColumnRun(counts, h, (x, ya, yb) => {
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (ya < y0) y0 = ya;
    if (yb - 1 > y1) y1 = yb - 1;
    area += yb - ya;
  });
  if (area === 0) return { x0: 0, y0: 0, width: 0, height: 0, area: 0, data: new Uint8Array(0) };
  const width = x1 - x0 + 1;
  const height = y1 - y0 + 1;
  const data = new Uint8Array(width * height);
  forEachColumnRun(counts, h, (x, ya, yb) => {
    for (let y = ya; y < yb; y += 1) data[(y - y0) * width + (x - x0)] = 1;
  });
  return { x0, y0, width, height, area, data };
}

// Row-major 0/1 mask (h*w) to a compressed RLE, as pycocotools.mask.encode would.
export function encodeMask(mask, h, w) {
  const counts = [];
  let value = 0;
  let run = 0;
  for (let x = 0; x < w; x += 1) {
    for (let y = 0; y < h; y += 1) {
      const v = mask[y * w + x] ? 1 : 0;
      if (v !== value) {
        counts.push(run);
        run = 0;
        value = v;
      }
      run += 1;
    }
  }
  counts.push(run);
  return { size: [h, w], counts: encodeCounts(counts) };
}

export function area(rle) {
  const counts = countsOf(rle);
  let total = 0;
  for (let i = 1; i < counts.length; i += 2) total += counts[i];
  return total;
}
