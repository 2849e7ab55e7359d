// A canvas that shows one image and the layers drawn over it.
//
// Frames: `xyImage` is full-resolution image pixels (x right, y down; pixel
// (i, j) covers [i, i+1) x [j, j+1)); `xyScreen` is CSS pixels in the browser
// viewport, the frame of PointerEvent.clientX/clientY. The transform is
// xyScreen = canvasOrigin + offset + scale * xyImage.
//
// What is drawn: first the image source, an object with draw(ctx, viewer)
// called with ctx in device pixels (identity transform), such as the tile
// pyramid of image/tiles.js, then the layers (instances, the proposal, ...) in the
// image frame.
//
// Events: "change" after every zoom, pan or fit.

const MIN_SCALE = 0.02;
const MAX_SCALE = 64;

export class Viewer extends EventTarget {
  constructor(canvas) {
    super();
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.source = null; // draws the image: {draw(ctx, viewer)}
    this.width = 0;
    this.height = 0;
    this.scale = 1;
    this.offsetX = 0; // CSS px from the canvas's left edge to image x = 0
    this.offsetY = 0;
    this.layers = [];
    this.frameRequested = false;
    this.userMoved = false; // after a zoom or pan, a resize keeps the view
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
  }

  // Show `source` (see above) as an image of width x height pixels.
  setImageSource(source, width, height) {
    this.source = source;
    this.width = width;
    this.height = height;
    this.fit();
  }

  // Show a whole decoded picture (an ImageBitmap or HTMLImageElement).
  setImage(image, width, height) {
    this.setImageSource(bitmapSource(image), width, height);
  }

  // A layer is a function (ctx, viewer) called after the image is drawn, with
  // ctx in the image frame; use viewer.scale to size things in screen pixels.
  // Layers are drawn by increasing `order`.
  addLayer(draw, order = 0) {
    this.layers.push({ draw, order });
    this.layers.sort((a, b) => a.order - b.order);
    this.requestDraw();
  }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    const { clientWidth, clientHeight } = this.canvas;
    this.canvas.width = Math.max(1, Math.round(clientWidth * ratio));
    this.canvas.height = Math.max(1, Math.round(clientHeight * ratio));
    if (!this.userMoved) this.fit();
    else this.requestDraw();
  }

  fit() {
    this.userMoved = false;
    const { clientWidth, clientHeight } = this.canvas;
    if (!this.width || !this.height || !clientWidth || !clientHeight) return;
    const margin = 16;
    this.scale = Math.min(
      (clientWidth - 2 * margin) / this.width,
      (clientHeight - 2 * margin) / this.height,
    );
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale));
    this.offsetX = (clientWidth - this.width * this.scale) / 2;
    this.offsetY = (clientHeight - this.height * this.scale) / 2;
    this.changed();
  }

  imageToScreen(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: rect.left + this.offsetX + x * this.scale, y: rect.top + this.offsetY + y * this.scale };
  }

  screenToImage(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: (x - rect.left - this.offsetX) / this.scale, y: (y - rect.top - this.offsetY) / this.scale };
  }

  containsImagePoint(xyImage) {
    return xyImage.x >= 0 && xyImage.y >= 0 && xyImage.x < this.width && xyImage.y < this.height;
  }

  // Zoom by `factor`, keeping the image point under xyScreen where it is.
  zoomAt(xyScreen, factor) {
    const anchor = this.screenToImage(xyScreen.x, xyScreen.y);
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const rect = this.canvas.getBoundingClientRect();
    this.scale = scale;
    this.offsetX = xyScreen.x - rect.left - anchor.x * scale;
    this.offsetY = xyScreen.y - rect.top - anchor.y * scale;
    this.userMoved = true;
    this.changed();
  }

  panBy(dxScreen, dyScreen) {
    this.offsetX += dxScreen;
    this.offsetY += dyScreen;
    this.userMoved = true;
    this.changed();
  }

  changed() {
    this.dispatchEvent(new Event("change"));
    this.requestDraw();
  }

  requestDraw() {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => {
      this.frameRequested = false;
      this.draw();
    });
  }

  draw() {
    const ctx = this.ctx;
    const ratio = this.canvas.width / Math.max(1, this.canvas.clientWidth);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.source) return;
    ctx.save();
    this.source.draw(ctx, this);
    ctx.restore();
    ctx.setTransform(
      ratio * this.scale, 0, 0, ratio * this.scale, ratio * this.offsetX, ratio * this.offsetY,
    );
    ctx.imageSmoothingEnabled = false;
    for (const layer of this.layers) {
      ctx.save();
      layer.draw(ctx, this);
      ctx.restore();
    }
  }
}

function bitmapSource(image) {
  return {
    draw(ctx, viewer) {
      const ratio = viewer.canvas.width / Math.max(1, viewer.canvas.clientWidth);
      ctx.setTransform(
        ratio * viewer.scale, 0, 0, ratio * viewer.scale, ratio * viewer.offsetX, ratio * viewer.offsetY,
      );
      // Sharp pixels when zoomed in, smooth when zoomed out.
      ctx.imageSmoothingEnabled = viewer.scale < 2;
      ctx.drawImage(image, 0, 0, viewer.width, viewer.height);
    },
  };
}
