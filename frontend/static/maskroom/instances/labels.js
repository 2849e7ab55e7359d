// The label picker: one button per label, keys 1-9, remembered per project.
// Events: "change" {label} when another label is chosen.

import { el } from "../lib/dom.js";

export class LabelPicker extends EventTarget {
  constructor({ node, labels, projectId }) {
    super();
    this.node = node;
    this.labels = labels;
    this.storageKey = `maskroom.label.${projectId}`;
    const saved = Number(localStorage.getItem(this.storageKey));
    this.selected = labels.find((label) => label.id === saved) ?? labels[0] ?? null;
    this.render();
  }

  selectIndex(index) {
    if (index >= 0 && index < this.labels.length) this.select(this.labels[index]);
  }

  select(label) {
    this.selected = label;
    localStorage.setItem(this.storageKey, String(label.id));
    this.render();
    this.dispatchEvent(new CustomEvent("change", { detail: { label } }));
  }

  render() {
    if (!this.labels.length) {
      this.node.replaceChildren(el("p", { class: "muted" }, "This project has no labels."));
      return;
    }
    const buttons = this.labels.map((label, index) =>
      el(
        "button",
        {
          type: "button",
          role: "radio",
          class: "label-button",
          "aria-checked": String(label === this.selected),
          dataset: { labelId: label.id },
          title: index < 9 ? `Key ${index + 1}` : "",
          onclick: () => this.select(label),
        },
        el("span", { class: "swatch", style: { background: label.color } }),
        el("span", { class: "name" }, label.name),
        index < 9 ? el("kbd", {}, String(index + 1)) : null,
      ),
    );
    this.node.replaceChildren(...buttons);
  }
}
