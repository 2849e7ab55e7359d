// Outlines of other sets drawn over the image, each group in its own colour:
// people's sets on a disputed image (dispute_panel.js) and a gold image's
// reference (gold_feedback.js). Read-only; a group can be hidden, and its
// instances picked (a picked one is filled).

import { decodeCrop } from "../instances/rle.js";
import { maskBitmap } from "../image/overlay.js";

const ORDER = 35; // over the curated instances, under the tools' drawing

export class SetOutlines {
  constructor(viewer) {
    this.viewer = viewer;
    this.groups = []; // {key, color, visible, items: [{id, labelId, rle, crop, outline, filled}]}
    this.picked = new Set(); // item ids
    viewer.addLayer((ctx) => this.draw(ctx), ORDER);
  }

  // instances: [{id?, label_id, rle}] from the API.
  addGroup(key, color, instances) {
    const items = instances.map((instance, index) => {
      const crop = decodeCrop(instance.rle);
      return {
        id: instance.id ?? `${key}:${index}`,
        labelId: instance.label_id,
        rle: instance.rle,
        crop,
        outline: maskBitmap(crop, color, { fill: 0, edge: 1 }),
        filled: null,
        color,
      };
    });
    this.groups.push({ key, color, visible: true, items });
    this.viewer.requestDraw();
    return items.length;
  }

  setVisible(key, visible) {
    const group = this.groups.find((g) => g.key === key);
    if (group) group.visible = visible;
    this.viewer.requestDraw();
  }

  // The topmost instance of a visible group under image pixel (x, y), or null.
  itemAt(x, y) {
    for (const group of [...this.groups].reverse()) {
      if (!group.visible) continue;
      for (const item of group.items) {
        const { x0, y0, width, height, data } = item.crop;
        const cx = Math.floor(x) - x0;
        const cy = Math.floor(y) - y0;
        if (cx >= 0 && cy >= 0 && cx < width && cy < height && data[cy * width + cx]) return item;
      }
    }
    return null;
  }

  togglePick(item) {
    if (this.picked.has(item.id)) this.picked.delete(item.id);
    else this.picked.add(item.id);
    this.viewer.requestDraw();
  }

  pickedItems() {
    return this.groups.flatMap((g) => g.items).filter((item) => this.picked.has(item.id));
  }

  clearPicked() {
    this.picked.clear();
    this.viewer.requestDraw();
  }

  draw(ctx) {
    ctx.save();
    ctx.imageSmoothingEnabled = false;
    for (const group of this.groups) {
      if (!group.visible) continue;
      for (const item of group.items) {
        if (!item.outline) continue;
        if (this.picked.has(item.id)) {
          item.filled ??= maskBitmap(item.crop, item.color, { fill: 0.55, edge: 1 });
          ctx.drawImage(item.filled, item.crop.x0, item.crop.y0);
        } else {
          ctx.drawImage(item.outline, item.crop.x0, item.crop.y0);
        }
      }
    }
    ctx.restore();
  }
}
