// Polygon tool: click the vertices; double-click, Enter or a click on the
// first vertex closes the polygon into a new instance of the chosen label;
// Backspace removes the last vertex, Esc cancels.
//
// context: {viewer, edits, labelId(), imageSize() -> [h, w], showError(message)}.

import { fillPolygon, isEmpty, toRle } from "../instances/maskops.js";

const CLOSE_PX = 6; // screen pixels: a click this near the first vertex closes

export function createPolygonTool({ viewer, edits, labelId, imageSize, showError }) {
  let vertices = []; // [{x, y}] in image pixels
  let hover = null;

  function nearScreen(a, b) {
    return Math.hypot(a.x - b.x, a.y - b.y) * viewer.scale <= CLOSE_PX;
  }

  function cancel() {
    vertices = [];
    viewer.requestDraw();
  }

  function close() {
    // A double-click's second click lands on the vertex its first one added.
    const points = vertices.filter((p, i) => i === 0 || !nearScreen(p, vertices[i - 1]));
    if (points.length < 3) {
      showError("A polygon needs at least three vertices.");
      return;
    }
    const chosen = labelId();
    if (!chosen) {
      showError("Choose a label first.");
      return;
    }
    const crop = fillPolygon(points, imageSize());
    cancel();
    if (isEmpty(crop)) {
      showError("The polygon covers no pixel of the image.");
      return;
    }
    showError("");
    edits.create({ labelId: chosen, rle: toRle(crop, imageSize()) }, "polygon");
  }

  return {
    name: "polygon",
    cursor: "crosshair",
    get vertices() {
      return vertices.slice();
    },
    activate() {},
    deactivate() {
      hover = null;
      cancel();
    },
    onPointerDown(event, xyImage) {
      if (event.button !== 0) return;
      if (vertices.length >= 3 && nearScreen(xyImage, vertices[0])) {
        close();
        return;
      }
      vertices.push({ x: Math.round(xyImage.x * 100) / 100, y: Math.round(xyImage.y * 100) / 100 });
      viewer.requestDraw();
    },
    onPointerMove(event, xyImage) {
      hover = xyImage;
      if (vertices.length) viewer.requestDraw();
    },
    onPointerUp() {},
    onDoubleClick() {
      if (vertices.length) close();
    },
    onPointerLeave() {
      hover = null;
      viewer.requestDraw();
    },
    onKey(event) {
      if (!vertices.length || event.ctrlKey || event.metaKey || event.altKey) return false;
      if (event.key === "Enter") close();
      else if (event.key === "Escape") cancel();
      else if (event.key === "Backspace") {
        vertices.pop();
        viewer.requestDraw();
      } else return false;
      return true;
    },
    draw(ctx, view) {
      if (!vertices.length) return;
      ctx.lineWidth = 1.5 / view.scale;
      ctx.strokeStyle = "#ffffff";
      ctx.fillStyle = "rgba(255, 255, 255, 0.15)";
      ctx.beginPath();
      ctx.moveTo(vertices[0].x, vertices[0].y);
      for (const p of vertices.slice(1)) ctx.lineTo(p.x, p.y);
      if (hover) ctx.lineTo(hover.x, hover.y);
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
      for (const [i, p] of vertices.entries()) {
        ctx.beginPath();
        ctx.arc(p.x, p.y, (i === 0 ? 5 : 3.5) / view.scale, 0, 2 * Math.PI);
        ctx.fillStyle = i === 0 ? "#facc15" : "#ffffff";
        ctx.fill();
      }
    },
  };
}
