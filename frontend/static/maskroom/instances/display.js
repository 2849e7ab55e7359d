// How the instances are shown: the fill's opacity (slider), outline only (O)
// and hide all (H), remembered per project in localStorage.

import { DEFAULT_DISPLAY } from "./layer.js";

export const DISPLAY_KEYS = [
  { key: "O", does: "outline only / filled instances" },
  { key: "H", does: "hide / show all instances" },
];

export class InstanceDisplay {
  // nodes: {opacity (input[type=range] 0-100), outline (button), hidden (button)}.
  constructor({ layer, projectId, nodes }) {
    this.layer = layer;
    this.nodes = nodes;
    this.storageKey = `maskroom.display.${projectId}`;
    layer.setDisplay(this.read());
    nodes.opacity?.addEventListener("input", () => this.set({ opacity: Number(nodes.opacity.value) / 100 }));
    nodes.outline?.addEventListener("click", () => this.toggle("outline"));
    nodes.hidden?.addEventListener("click", () => this.toggle("hidden"));
    this.render();
  }

  get settings() {
    return { ...this.layer.display };
  }

  read() {
    try {
      const saved = JSON.parse(localStorage.getItem(this.storageKey) || "{}");
      return {
        opacity: Number.isFinite(saved.opacity) ? saved.opacity : DEFAULT_DISPLAY.opacity,
        outline: saved.outline === true,
        hidden: saved.hidden === true,
      };
    } catch {
      return { ...DEFAULT_DISPLAY };
    }
  }

  set(changes) {
    this.layer.setDisplay(changes);
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(this.layer.display));
    } catch {
      // Private mode or a full storage: the setting holds for this page only.
    }
    this.render();
  }

  toggle(name) {
    this.set({ [name]: !this.layer.display[name] });
  }

  // The editor's keydown: true when the key was ours (O, H without modifiers).
  handleKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return false;
    const key = event.key.toLowerCase();
    if (key === "o") this.toggle("outline");
    else if (key === "h") this.toggle("hidden");
    else return false;
    return true;
  }

  render() {
    const { opacity, outline, hidden } = this.layer.display;
    const { nodes } = this;
    if (nodes.opacity) nodes.opacity.value = String(Math.round(opacity * 100));
    nodes.outline?.setAttribute("aria-pressed", String(outline));
    nodes.hidden?.setAttribute("aria-pressed", String(hidden));
    document.body.dataset.instancesHidden = String(hidden);
  }
}
