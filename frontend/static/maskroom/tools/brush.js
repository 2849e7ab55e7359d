// Brush tool: drag to paint into the selected instance's mask (with nothing
// selected, the stroke becomes a new instance of the chosen label, selected
// so that the next strokes add to it). The eraser (eraser.js) is the same
// tool taking pixels out. A circle shows the brush under the pointer; its
// radius is in image pixels, shared by brush and eraser, and [ and ] change it.
//
// context: {viewer, edits, store, selection: {ids(), set(ids)}, labelId(),
//           imageSize() -> [h, w], showError(message)}; see instances/editing.js.

import { EMPTY, cropFromRle, isEmpty, paintStroke, toRle } from "../instances/maskops.js";

export const MIN_RADIUS = 1;
export const MAX_RADIUS = 256;

// The brush size, shared by brush and eraser. Events: "change" {radius}.
export class BrushSize extends EventTarget {
  constructor(radius = 6) {
    super();
    this.radius = radius;
  }

  scale(factor) {
    const next = Math.round(this.radius * factor + Math.sign(factor - 1));
    this.radius = Math.min(MAX_RADIUS, Math.max(MIN_RADIUS, next));
    this.dispatchEvent(new CustomEvent("change", { detail: { radius: this.radius } }));
  }
}

export function createBrushTool(context) {
  return createStrokeTool({ ...context, name: "brush", erase: false });
}

export function createStrokeTool({ name, erase, viewer, edits, store, selection, labelId, imageSize, showError, size }) {
  let stroke = null; // [{x, y}] in image pixels, while the button is down
  let hover = null; // the pointer, for the brush circle

  function target() {
    const ids = selection.ids();
    if (ids.length > 1) throw new Error(`Select one instance to ${erase ? "erase from" : "paint into"}.`);
    if (!ids.length && erase) throw new Error("Select an instance to erase from (V, then click it).");
    return ids[0] ?? null;
  }

  function apply(points) {
    const id = target();
    const radius = size.radius;
    if (id === null) {
      const chosen = labelId();
      if (!chosen) throw new Error("Choose a label first.");
      const painted = paintStroke(EMPTY, points, radius, 1, imageSize());
      if (isEmpty(painted)) return;
      const instance = edits.create({ labelId: chosen, rle: toRle(painted, imageSize()) }, "brush");
      if (instance) selection.set([instance.id]); // null: a read-only set
      return;
    }
    const instance = store.get(id);
    if (!instance) throw new Error(`Instance ${id} is gone.`);
    const before = cropFromRle(instance.rle);
    const after = paintStroke(before, points, radius, erase ? 0 : 1, imageSize());
    if (after.area === before.area) return; // the stroke changed nothing
    if (isEmpty(after)) edits.remove([id]); // all of it erased
    else edits.setMask(id, toRle(after, imageSize()), erase ? "erase" : "brush");
  }

  return {
    name,
    cursor: "crosshair",
    activate() {},
    deactivate() {
      stroke = null;
      hover = null;
      viewer.requestDraw();
    },
    onPointerDown(event, xyImage) {
      if (event.button !== 0) return;
      try {
        target();
      } catch (err) {
        showError(err.message);
        return;
      }
      showError("");
      stroke = [xyImage];
      hover = xyImage;
      viewer.requestDraw();
    },
    onPointerMove(event, xyImage) {
      hover = xyImage;
      if (stroke) {
        const last = stroke[stroke.length - 1];
        // Points closer than a quarter radius add nothing to the stroke.
        if (Math.hypot(xyImage.x - last.x, xyImage.y - last.y) >= Math.max(0.5, size.radius / 4)) stroke.push(xyImage);
      }
      viewer.requestDraw();
    },
    onPointerUp(event, xyImage) {
      if (!stroke) return;
      const points = stroke;
      stroke = null;
      if (xyImage) points.push(xyImage);
      try {
        apply(points);
      } catch (err) {
        showError(err.message);
      }
      viewer.requestDraw();
    },
    onPointerLeave() {
      hover = null;
      viewer.requestDraw();
    },
    draw(ctx, view) {
      if (stroke) {
        ctx.lineCap = "round";
        ctx.lineJoin = "round";
        ctx.lineWidth = 2 * size.radius;
        ctx.strokeStyle = erase ? "rgba(17, 19, 24, 0.6)" : "rgba(255, 255, 255, 0.45)";
        ctx.beginPath();
        ctx.moveTo(stroke[0].x, stroke[0].y);
        for (const point of stroke) ctx.lineTo(point.x, point.y);
        if (stroke.length === 1) ctx.lineTo(stroke[0].x + 0.01, stroke[0].y);
        ctx.stroke();
      }
      if (hover) {
        ctx.beginPath();
        ctx.arc(hover.x, hover.y, size.radius, 0, 2 * Math.PI);
        ctx.lineWidth = 1.5 / view.scale;
        ctx.setLineDash(erase ? [4 / view.scale, 3 / view.scale] : []);
        ctx.strokeStyle = "#ffffff";
        ctx.stroke();
      }
    },
  };
}
