// What the annotator sees of the live prompt session (prompt_session.js):
// its points, box and mask drawn over the image, and the line under the
// image that describes them, with the Accept and Discard buttons enabled to
// match. Redrawn on every "change" of the session.

import { maskBitmap } from "../image/overlay.js";
import { NEGATIVE, POSITIVE } from "./protocol.js";

const DEFAULT_COLOR = "#ffcc00";

export class PromptView {
  // session: PromptSession; color() -> the colour of the mask (the chosen
  // label's); nodes: {info, accept, discard}; drawn at `order` among the viewer's layers.
  constructor({ session, viewer, color, nodes, order = 20 }) {
    this.session = session;
    this.viewer = viewer;
    this.color = color;
    this.nodes = nodes;
    this.bitmap = null; // {key, canvas}: the mask, built once per mask and colour
    viewer.addLayer((ctx, view) => this.draw(ctx, view), order);
    session.addEventListener("change", () => this.render());
  }

  draw(ctx, view) {
    const { mask, box, points } = this.session;
    const color = this.color() ?? DEFAULT_COLOR;
    if (mask && mask.crop.area > 0) {
      const key = `${mask.requestId}:${color}`;
      if (this.bitmap?.key !== key) {
        this.bitmap = { key, canvas: maskBitmap(mask.crop, color, { fill: 0.55, edge: 1, edgeColor: "#ffffff" }) };
      }
      ctx.drawImage(this.bitmap.canvas, mask.crop.x0, mask.crop.y0);
    }
    if (box) {
      const [x0, y0, x1, y1] = box;
      ctx.lineWidth = 2 / view.scale;
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
    for (const [x, y, label] of points) {
      ctx.beginPath();
      ctx.arc(x, y, 5 / view.scale, 0, 2 * Math.PI);
      ctx.fillStyle = label === POSITIVE ? "#22c55e" : "#ef4444";
      ctx.fill();
      ctx.lineWidth = 1.5 / view.scale;
      ctx.strokeStyle = "#ffffff";
      ctx.stroke();
    }
  }

  render() {
    const { info, accept, discard } = this.nodes;
    const session = this.session;
    const mask = session.mask;
    info.dataset.area = String(mask ? mask.area : 0);
    info.dataset.requestId = String(mask ? mask.requestId : 0);
    info.classList.toggle("muted", !mask);
    const prompts = this.describePrompts();
    if (mask) {
      info.textContent = `${mask.area} px · score ${Number(mask.score).toFixed(2)} · ${prompts}`;
    } else if (!session.isEmpty) {
      info.textContent = `Segmenting… (${prompts})`;
    } else {
      info.textContent = "Click an object to segment it.";
    }
    accept.disabled = !mask;
    discard.disabled = session.isEmpty;
    this.viewer.requestDraw();
  }

  describePrompts() {
    const { points, box, refining } = this.session;
    const positives = points.filter((p) => p[2] === POSITIVE).length;
    const negatives = points.filter((p) => p[2] === NEGATIVE).length;
    const parts = [];
    if (positives) parts.push(`${positives} positive`);
    if (negatives) parts.push(`${negatives} negative`);
    if (box) parts.push("box");
    if (refining !== null) parts.unshift(`refining #${refining}`);
    return parts.join(", ") || "no prompts";
  }
}
