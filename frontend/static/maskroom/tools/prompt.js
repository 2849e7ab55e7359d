// Prompt tool: click for a positive point, right-click or Alt+click for a
// negative point, drag for a box; a click while R is held refines: it
// reopens the instance under the pointer as the current mask. It only
// interprets the pointer; the editor decides what a point, a box or a refine
// does (see pages/editor.js and instances/editing.js).
//
// The tool is an EventTarget: "point" {xyImage, label}, "box" {x0, y0, x1, y1}
// and "refine" {xyImage}, all in image pixels.

import { NEGATIVE, POSITIVE } from "../prompting/protocol.js";

const DRAG_THRESHOLD_PX = 5;

// refineHeld() says whether R is held down.
export function createPromptTool({ viewer, refineHeld = () => false }) {
  let drag = null; // {startScreen, startImage, label, currentImage, isBox}
  const events = new EventTarget();
  const emit = (type, detail) => events.dispatchEvent(new CustomEvent(type, { detail }));

  return Object.assign(events, {
    name: "prompt",
    cursor: "crosshair",
    activate() {},
    deactivate() {
      drag = null;
      viewer.requestDraw();
    },
    onPointerDown(event, xyImage) {
      if (event.button !== 0 && event.button !== 2) return;
      if (event.button === 0 && refineHeld()) {
        drag = null;
        if (viewer.containsImagePoint(xyImage)) emit("refine", { xyImage });
        return;
      }
      const negative = event.button === 2 || event.altKey;
      drag = {
        startScreen: { x: event.clientX, y: event.clientY },
        startImage: xyImage,
        currentImage: xyImage,
        label: negative ? NEGATIVE : POSITIVE,
        isBox: false,
      };
    },
    onPointerMove(event, xyImage) {
      if (!drag) return;
      drag.currentImage = xyImage;
      const moved = Math.hypot(event.clientX - drag.startScreen.x, event.clientY - drag.startScreen.y);
      // Only a positive (left) drag draws a box.
      if (!drag.isBox && drag.label === POSITIVE && moved > DRAG_THRESHOLD_PX) drag.isBox = true;
      if (drag.isBox) viewer.requestDraw();
    },
    onPointerUp(event, xyImage) {
      if (!drag) return;
      const done = drag;
      drag = null;
      if (done.isBox) {
        const [x0, x1] = clampSpan(done.startImage.x, xyImage.x, viewer.width);
        const [y0, y1] = clampSpan(done.startImage.y, xyImage.y, viewer.height);
        viewer.requestDraw();
        if (x1 - x0 >= 1 && y1 - y0 >= 1) emit("box", { x0, y0, x1, y1 });
      } else if (viewer.containsImagePoint(done.startImage)) {
        emit("point", { xyImage: done.startImage, label: done.label });
      }
    },
    draw(ctx, view) {
      if (!drag || !drag.isBox) return;
      const x = Math.min(drag.startImage.x, drag.currentImage.x);
      const y = Math.min(drag.startImage.y, drag.currentImage.y);
      ctx.setLineDash([6 / view.scale, 4 / view.scale]);
      ctx.lineWidth = 1.5 / view.scale;
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(x, y, Math.abs(drag.currentImage.x - drag.startImage.x), Math.abs(drag.currentImage.y - drag.startImage.y));
    },
  });
}

function clampSpan(a, b, size) {
  const lo = Math.max(0, Math.min(a, b));
  const hi = Math.min(size, Math.max(a, b));
  return [lo, hi];
}
