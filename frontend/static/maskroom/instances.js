// The image's saved instances: the list in the sidebar and their masks drawn
// over the image in their label's colour. All changes go through the REST API.

import { api, asList, endpoints } from "./api.js";
import { el, formatArea } from "./dom.js";
import { maskBitmap } from "./overlay.js";
import { decodeCrop } from "./rle.js";

export class Instances {
  // labels: [{id, name, color}]; onError(message) shows failures.
  constructor({ imageId, labels, listNode, countNode, viewer, onError }) {
    this.imageId = imageId;
    this.labels = labels;
    this.listNode = listNode;
    this.countNode = countNode;
    this.viewer = viewer;
    this.onError = onError;
    this.items = new Map(); // id -> {instance, crop, bitmap}
    this.highlighted = null;
    viewer.addLayer((ctx) => this.draw(ctx), 10);
  }

  labelById(id) {
    return this.labels.find((label) => label.id === id) ?? null;
  }

  labelOf(instance) {
    return this.labelById(instance.label_id) ?? this.labels.find((label) => label.name === instance.label) ?? null;
  }

  async load() {
    const list = asList(await api(endpoints.imageInstances(this.imageId)));
    this.items.clear();
    for (const instance of list) this.put(instance);
    this.render();
  }

  put(instance) {
    const crop = decodeCrop(instance.rle);
    const color = this.labelOf(instance)?.color ?? "#ff0000";
    this.items.set(instance.id, { instance, crop, bitmap: maskBitmap(crop, color) });
  }

  async create({ labelId, rle }) {
    const instance = await api(endpoints.imageInstances(this.imageId), {
      method: "POST",
      json: { label: labelId, rle },
    });
    this.put(instance);
    this.render();
    return instance;
  }

  async remove(id) {
    try {
      await api(endpoints.instance(id), { method: "DELETE" });
    } catch (err) {
      this.onError(`Could not delete instance ${id}: ${err.message}`);
      return;
    }
    this.items.delete(id);
    this.render();
  }

  async relabel(id, labelId) {
    try {
      const instance = await api(endpoints.instance(id), { method: "PATCH", json: { label: labelId } });
      this.put(instance);
    } catch (err) {
      this.onError(`Could not relabel instance ${id}: ${err.message}`);
    }
    this.render();
  }

  highlight(id) {
    this.highlighted = id;
    this.viewer.requestDraw();
  }

  draw(ctx) {
    for (const [id, { crop, bitmap }] of this.items) {
      if (!bitmap) continue;
      ctx.globalAlpha = this.highlighted === null || this.highlighted === id ? 1 : 0.45;
      ctx.drawImage(bitmap, crop.x0, crop.y0);
    }
  }

  render() {
    this.countNode.textContent = String(this.items.size);
    const rows = [...this.items.values()].map(({ instance }) => this.row(instance));
    if (!rows.length) {
      rows.push(el("tr", { class: "empty" }, el("td", { colSpan: 5 }, "No instances yet.")));
    }
    this.listNode.replaceChildren(...rows);
    this.viewer.requestDraw();
  }

  row(instance) {
    const label = this.labelOf(instance);
    const select = el(
      "select",
      {
        "aria-label": `Label of instance ${instance.id}`,
        class: "relabel",
        onchange: (event) => {
          this.relabel(instance.id, Number(event.target.value));
          // Give the keys (1-9, Enter) back to the editor.
          this.viewer.canvas.focus({ preventScroll: true });
        },
      },
      this.labels.map((option) =>
        el("option", { value: option.id, selected: label?.id === option.id }, option.name),
      ),
    );
    return el(
      "tr",
      {
        dataset: { instanceId: instance.id },
        onmouseenter: () => this.highlight(instance.id),
        onmouseleave: () => this.highlight(null),
      },
      el("td", {}, el("span", { class: "swatch", style: { background: label?.color ?? "#888" } }), instance.id),
      el("td", {}, select),
      el("td", { class: "num" }, formatArea(instance.area)),
      el("td", { class: "author" }, authorName(instance.author)),
      el(
        "td",
        {},
        el("button", {
          type: "button",
          class: "icon danger",
          title: "Delete this instance",
          "aria-label": `Delete instance ${instance.id}`,
          onclick: () => this.remove(instance.id),
        }, "✕"),
      ),
    );
  }
}

function authorName(author) {
  if (author === null || author === undefined) return "—";
  if (typeof author === "object") return author.username ?? String(author.id ?? "");
  return String(author);
}
