// The reviewer's panel on an image with a consensus (editor, curated set):
// every finished set's outlines in its own colour over the curated set, a
// pick tool to choose instances from them, "Add picked" (each as it is) and
// "Merge picked" (one instance of their union, the most common label) into
// the curated set, with their provenance; the consensus recomputed with
// other settings; and, on a disputed image, "Resolve and next". Redrawing is
// the editor's own tools.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { picksToInstances } from "./picks.js";
import { goToNext } from "./queue.js";
import { SetOutlines } from "./set_outlines.js";
import { whenSaved } from "./work_bar.js";

export const SET_COLORS = ["#38bdf8", "#f472b6", "#facc15", "#a78bfa", "#fb923c", "#34d399", "#f87171", "#e879f9"];

// The panel, or null where the image has no consensus (or the caller may not see it).
export async function mountDispute({ node, imageId, projectId, viewer, tools, edits, store, size }) {
  let record;
  try {
    record = await api(endpoints.imageConsensus(imageId));
  } catch (err) {
    if ([403, 404].includes(err.status)) return null;
    throw err;
  }
  const { sets } = await api(endpoints.imageAgreement(imageId));
  const outlines = new SetOutlines(viewer);
  const shown = await Promise.all(
    sets.map(async (set, index) => {
      const instances = await api(endpoints.setInstances(imageId, set.assignment));
      const accepted = instances.filter((instance) => instance.state === "accepted");
      const color = SET_COLORS[index % SET_COLORS.length];
      return { ...set, color, count: outlines.addGroup(set.assignment, color, accepted) };
    }),
  );
  return new DisputePanel({ node, record, sets: shown, outlines, imageId, projectId, tools, edits, store, size });
}

class DisputePanel {
  constructor({ node, record, sets, outlines, imageId, projectId, tools, edits, store, size }) {
    Object.assign(this, { node, record, sets, outlines, imageId, projectId, tools, edits, store, size });
    this.previousTool = null;
    tools.register(this.pickTool());
    this.errorNode = el("p", { class: "error", role: "alert", hidden: true });
    this.pickedNode = el("span", { class: "hint", id: "dispute-picked" }, "Nothing picked.");
    node.hidden = false;
    this.render();
  }

  summary() {
    const r = this.record;
    const agreement = r.mean_f1 === null ? "" : `; mean F1 ${r.mean_f1.toFixed(2)}`;
    const clusters = `${r.disputed} object${r.disputed === 1 ? "" : "s"} found by fewer than ${r.quorum} of the ${r.sets} sets`;
    if (r.needs_review) return `${clusters}${agreement}. Pick what is right from the sets, redraw what none got, then resolve.`;
    const by = r.resolved_by ? ` Resolved by ${r.resolved_by}.` : "";
    return `Consensus of ${r.sets} sets (${r.method})${agreement}.${by}`;
  }

  render() {
    const r = this.record;
    this.node.dataset.needsReview = String(r.needs_review);
    const button = (id, text, onclick, primary = false) =>
      el("button", { type: "button", id, class: primary ? "primary" : "", onclick }, text);
    this.node.replaceChildren(
      el("h2", {}, r.needs_review ? "Disputed image" : "People's sets"),
      el("p", { class: "work-status", id: "dispute-summary" }, this.summary()),
      el("ul", { class: "set-legend", id: "set-legend" }, this.sets.map((set) => this.legendItem(set))),
      el(
        "div",
        { class: "row wrap work-actions" },
        button("dispute-pick", "Pick from sets", () => this.togglePicking()),
        button("dispute-add", "Add picked", () => this.add(false)),
        button("dispute-merge", "Merge picked", () => this.add(true)),
      ),
      this.pickedNode,
      this.recomputeForm(),
      r.needs_review
        ? el("div", { class: "row work-actions" }, button("dispute-resolve", "Resolve and next", () => this.resolve(), true))
        : null,
      this.errorNode,
    );
  }

  // The consensus again with other settings; consensus instances someone
  // edited since are replaced only once the reviewer confirms.
  recomputeForm() {
    const r = this.record;
    const form = el(
      "form",
      { id: "recompute-form", class: "stack work-form", onsubmit: (event) => this.recompute(event) },
      el(
        "label",
        {},
        "Fuse by ",
        el(
          "select",
          { name: "method" },
          ["majority", "staple"].map((m) => el("option", { value: m, selected: m === r.method }, m === "staple" ? "STAPLE" : "majority vote")),
        ),
      ),
      el("label", {}, "Match at IoU ", el("input", { type: "number", name: "iou", min: 0.05, max: 1, step: 0.05, value: r.iou })),
      el("label", {}, "Quorum (sets) ", el("input", { type: "number", name: "quorum", min: 1, max: r.sets, step: 1, value: r.quorum })),
      el("button", { type: "submit", id: "recompute" }, "Recompute the consensus"),
    );
    return el("details", { class: "recompute" }, el("summary", {}, "Other settings"), form);
  }

  async recompute(event) {
    event.preventDefault();
    showError(this.errorNode, "");
    const form = event.currentTarget;
    const json = {
      method: form.elements.method.value,
      iou: Number(form.elements.iou.value),
      quorum: Number(form.elements.quorum.value),
    };
    try {
      await whenSaved(this.store);
      try {
        await api(endpoints.imageConsensus(this.imageId), { method: "POST", json });
      } catch (err) {
        if (err.status !== 409 || !window.confirm(`${err.message}\n\nReplace them?`)) throw err;
        await api(endpoints.imageConsensus(this.imageId), { method: "POST", json: { ...json, confirm: true } });
      }
      window.location.reload(); // the new curated set and its record
    } catch (err) {
      showError(this.errorNode, err.message);
    }
  }

  legendItem(set) {
    const toggle = el("input", {
      type: "checkbox",
      checked: true,
      onchange: (event) => this.outlines.setVisible(set.assignment, event.target.checked),
    });
    return el(
      "li",
      { dataset: { assignment: set.assignment } },
      el("label", {}, toggle, el("span", { class: "swatch", style: { background: set.color } }), ` ${set.annotator} `, el("span", { class: "muted" }, `(${set.count})`)),
    );
  }

  pickTool() {
    return {
      name: "pick",
      cursor: "pointer",
      activate() {},
      deactivate() {},
      onPointerDown: (event, xyImage) => {
        if (event.button !== 0) return;
        const item = this.outlines.itemAt(xyImage.x, xyImage.y);
        if (item) this.outlines.togglePick(item);
        this.showPicked();
      },
      onPointerMove() {},
      onPointerUp() {},
      draw() {},
    };
  }

  togglePicking() {
    const picking = this.tools.active?.name === "pick";
    if (picking) this.tools.use(this.previousTool ?? "prompt");
    else {
      this.previousTool = this.tools.active?.name;
      this.tools.use("pick");
    }
    this.node.querySelector("#dispute-pick").setAttribute("aria-pressed", String(!picking));
  }

  showPicked() {
    const n = this.outlines.picked.size;
    this.pickedNode.textContent = n ? `${n} picked.` : "Nothing picked.";
  }

  // Into the curated set: each picked instance, or (merge) their union as one.
  add(merge) {
    showError(this.errorNode, "");
    const items = this.outlines.pickedItems();
    if (!items.length) {
      showError(this.errorNode, "Pick instances first: Pick from sets, then click their outlines.");
      return;
    }
    if (merge && items.length < 2) {
      showError(this.errorNode, "Pick two or more instances to merge.");
      return;
    }
    for (const made of picksToInstances(items, { merge, size: this.size })) {
      this.edits.create(made, merge ? "merge picked" : "add picked");
    }
    this.outlines.clearPicked();
    this.showPicked();
  }

  async resolve() {
    showError(this.errorNode, "");
    const buttons = [...this.node.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    try {
      await whenSaved(this.store);
      this.record = await api(endpoints.imageConsensusResolve(this.imageId), { method: "POST" });
      await goToNext(this.projectId, "review");
    } catch (err) {
      showError(this.errorNode, err.message);
      for (const b of buttons) b.disabled = false;
    }
  }
}
