// What the annotator sees of saving (store.js): the indicator ("Saving…",
// "All changes saved", "Offline: N changes waiting", "Conflict"), the conflict
// panel (mine and the server's, with "Keep mine" / "Use server's", and the
// server's version outlined over the image), and the "Recently deleted" list
// with a Restore button.

import { el, formatArea } from "../lib/dom.js";
import { maskBitmap } from "../image/overlay.js";
import { decodeCrop } from "./rle.js";

const byId = (id) => document.getElementById(id);
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export function saveStateText({ state, pending, conflicts, message }) {
  if (state === "conflict") return `Conflict: ${plural(conflicts, "instance")} changed on the server`;
  if (state === "offline") return `Offline: ${plural(pending, "change")} waiting`;
  if (state === "saving") return pending > 1 ? `Saving ${pending} changes…` : "Saving…";
  if (state === "error") return message ? `Not saved: ${message}` : "A change could not be saved";
  return "All changes saved";
}

export class SaveIndicator {
  constructor({ node, store }) {
    this.node = node;
    store.addEventListener("savestate", (event) => this.show(event.detail));
    this.show({ state: store.saveState, pending: store.pending, conflicts: store.conflicts.size, message: "" });
  }

  show(detail) {
    this.node.dataset.state = detail.state;
    this.node.dataset.pending = String(detail.pending);
    this.node.textContent = saveStateText(detail);
    this.node.title = detail.message || "";
  }
}

// One row per conflicting instance; the server's version is outlined in the viewer.
export class ConflictPanel {
  constructor({ node, listNode, store, viewer, labels }) {
    this.node = node;
    this.listNode = listNode;
    this.store = store;
    this.viewer = viewer;
    this.labels = new Map(labels.map((label) => [label.id, label]));
    this.outlines = new Map(); // id -> {key, crop, bitmap}
    store.addEventListener("conflict", () => this.render());
    viewer.addLayer((ctx) => this.draw(ctx), 30);
    this.render();
  }

  render() {
    const conflicts = this.store.conflictList();
    this.node.hidden = conflicts.length === 0;
    this.listNode.replaceChildren(...conflicts.map((conflict) => this.row(conflict)));
    this.outlines.clear();
    for (const { id, server } of conflicts) {
      if (!server) continue;
      const crop = decodeCrop(server.rle);
      const color = this.labels.get(server.label_id)?.color ?? "#ffffff";
      const bitmap = maskBitmap(crop, color, { fill: 0, edge: 1, edgeColor: "#ffffff" });
      this.outlines.set(id, { crop, bitmap });
    }
    this.viewer.requestDraw();
  }

  // The server's version as a white outline over the local (filled) one.
  draw(ctx) {
    ctx.globalAlpha = 1;
    for (const { crop, bitmap } of this.outlines.values()) {
      if (bitmap) ctx.drawImage(bitmap, crop.x0, crop.y0);
    }
  }

  side(title, instance, extra = "") {
    if (!instance) return el("div", { class: "conflict-side deleted" }, el("strong", {}, title), el("span", {}, "deleted"));
    const label = this.labels.get(instance.label_id);
    return el(
      "div",
      { class: "conflict-side" },
      el("strong", {}, title),
      el("span", {}, el("span", { class: "swatch", style: { background: label?.color ?? "#888" } }), label?.name ?? instance.label),
      el("span", { class: "muted" }, `${formatArea(instance.area ?? 0)}${extra}`),
    );
  }

  row({ id, mine, server }) {
    const serverExtra = server ? ` · v${server.version}` : "";
    return el(
      "li",
      { class: "conflict", dataset: { instanceId: id } },
      el("p", {}, `Instance ${id} was changed on the server while you edited it.`),
      el("div", { class: "sides" }, this.side("Yours", mine), this.side("Server's", server, serverExtra)),
      el(
        "div",
        { class: "row" },
        el("button", { type: "button", class: "primary keep-mine", onclick: () => this.store.keepMine(id) }, "Keep mine"),
        el("button", { type: "button", class: "use-server", onclick: () => this.store.useServer(id) }, "Use server's"),
      ),
    );
  }
}

// The image's deleted instances (from the server), each with a Restore button.
export class DeletedList {
  constructor({ node, listNode, store, labels }) {
    this.node = node;
    this.listNode = listNode;
    this.store = store;
    this.labels = new Map(labels.map((label) => [label.id, label]));
    this.stale = true;
    node.addEventListener("toggle", () => this.refresh());
    store.addEventListener("change", (event) => {
      if (event.detail.kind === "remove" || event.detail.kind === "restore") this.stale = true;
    });
    store.addEventListener("savestate", (event) => {
      if (event.detail.state === "saved" && this.stale) this.refresh();
    });
  }

  async refresh() {
    if (!this.node.open) return;
    this.stale = false;
    const deleted = await this.store.deleted();
    const rows = deleted.map((instance) => this.row(instance));
    if (!rows.length) rows.push(el("li", { class: "muted" }, "Nothing deleted."));
    this.listNode.replaceChildren(...rows);
  }

  row(instance) {
    const label = this.labels.get(instance.label_id);
    return el(
      "li",
      { dataset: { instanceId: instance.id } },
      el("span", { class: "swatch", style: { background: label?.color ?? "#888" } }),
      el("span", { class: "what" }, `#${instance.id} ${label?.name ?? instance.label} · ${formatArea(instance.area)}`),
      el("button", {
        type: "button",
        class: "restore",
        "aria-label": `Restore instance ${instance.id}`,
        onclick: () => {
          this.store.restore(instance.id);
          this.stale = true;
        },
      }, "Restore"),
    );
  }
}

// Everything above, on the editor template's nodes; errors go to showError(message).
export function attachSaveState({ store, viewer, labels, showError }) {
  new SaveIndicator({ node: byId("save-state"), store });
  new ConflictPanel({ node: byId("conflicts"), listNode: byId("conflict-list"), store, viewer, labels });
  new DeletedList({ node: byId("recently-deleted"), listNode: byId("deleted-list"), store, labels });
  store.addEventListener("error", (event) => showError(event.detail.message));
}
