// The window bar of the Channels panel for a one-channel medical image
// (DICOM, NIfTI): the CT presets (soft tissue, lung, bone, brain, liver) and
// free level and width, applied to channel 0's contrast limits
// (level -/+ width / 2). The presets come from the server
// (image.window_presets); "Model" shows what the model sees
// (image.model_window, set by owners on the project page).

import { el } from "../lib/dom.js";

const MEDICAL = new Set(["dicom", "nifti"]);

export function presetName(name) {
  const text = name.replace("-", " ");
  return text[0].toUpperCase() + text.slice(1);
}

// "lung (L -600, W 1500)", or "automatic (each image's percentile stretch)".
export function describeWindow(window) {
  if (!window) return "automatic (each image's percentile stretch)";
  const numbers = `L ${window.level}, W ${window.width}`;
  return window.preset ? `${presetName(window.preset)} (${numbers})` : numbers;
}

// Mount the bar in `node` for `image` when it is a one-channel medical image;
// it follows `settings` (DisplaySettings) both ways.
export function mountWindowBar({ node, image, settings }) {
  if (!node) return;
  node.hidden = !(MEDICAL.has(image.format) && image.channels === 1);
  if (node.hidden) return;
  const apply = (level, width) => width > 0 && settings.set(0, { min: level - width / 2, max: level + width / 2 });
  const buttons = Object.entries(image.window_presets ?? {}).map(([name, w]) =>
    el("button", { type: "button", class: "window-preset", dataset: { preset: name }, onclick: () => apply(w.level, w.width) }, presetName(name)),
  );
  if (image.model_window) {
    const w = image.model_window;
    buttons.push(el("button", { type: "button", class: "window-preset", dataset: { preset: "model" }, title: "The window the model sees", onclick: () => apply(w.level, w.width) }, "Model"));
  }
  const level = el("input", { type: "number", class: "window-level", "aria-label": "Window level", step: "any" });
  const width = el("input", { type: "number", class: "window-width", "aria-label": "Window width", step: "any", min: "0" });
  const typed = () => apply(Number(level.value), Number(width.value));
  level.addEventListener("change", typed);
  width.addEventListener("change", typed);
  const show = () => {
    const { min, max } = settings.channels[0];
    if (document.activeElement !== level) level.value = String(Math.round(((min + max) / 2) * 100) / 100);
    if (document.activeElement !== width) width.value = String(Math.round((max - min) * 100) / 100);
  };
  settings.addEventListener("change", show);
  show();
  node.replaceChildren(
    el("div", { class: "window-presets", role: "group", "aria-label": "Window presets" }, buttons),
    el("div", { class: "window-numbers" }, el("label", {}, "Level ", level), el("label", {}, "Width ", width)),
  );
}
