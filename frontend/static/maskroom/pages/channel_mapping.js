// The project page's "Model channels" card: which image channel the model
// sees as red, green and blue, and through which intensity window (a CT
// preset, a free level and width, or each image's automatic stretch)
// (GET/PATCH /api/projects/{id}/channel-mapping/). Owners change them; every
// embedding of the project is then computed again.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { describeMapping } from "../image/channels.js";
import { describeWindow, presetName } from "../image/windows.js";

const MAX_CHANNELS = 8;
const COLOURS = [
  ["red", "R"],
  ["green", "G"],
  ["blue", "B"],
];
const projectId = Number(document.body.dataset.projectId);
const card = document.getElementById("mapping-card");
const url = endpoints.projectChannelMapping(projectId);

function channelSelect(colour, value) {
  const options = [el("option", { value: "" }, "none")];
  for (let c = 0; c < MAX_CHANNELS; c += 1) options.push(el("option", { value: String(c) }, `ch${c}`));
  const select = el("select", { class: "mapping-channel", dataset: { colour }, "aria-label": `Channel the model sees as ${colour}` }, options);
  select.value = value === null || value === undefined ? "" : String(value);
  return select;
}

function describe(mapping) {
  return mapping ? describeMapping(mapping) : "default (1 channel: grey; 2: R = ch0, G = ch1; 3 or more: R, G, B = ch0, ch1, ch2)";
}

async function show() {
  const summary = card.querySelector(".mapping-summary");
  const form = card.querySelector(".mapping-form");
  const errorNode = card.querySelector(".error");
  const hint = card.querySelector(".hint");
  let { mapping, window, presets, can_edit: canEdit } = await api(url);
  const summarise = () => {
    summary.textContent = `Model sees: ${describe(mapping)}; window ${describeWindow(window)}`;
  };
  summarise();
  form.hidden = !canEdit;
  if (!canEdit) {
    hint.textContent = "Only the project's owners can change which channels the model sees.";
    return;
  }
  hint.textContent = "Changing this discards every embedding of the project and computes them again.";
  const selects = COLOURS.map(([colour], i) => channelSelect(colour, mapping ? mapping[i] : null));
  const windowSelect = el(
    "select",
    { class: "model-window", "aria-label": "Window the model sees" },
    [el("option", { value: "" }, "automatic"), ...Object.keys(presets).map((name) => el("option", { value: name }, presetName(name))), el("option", { value: "custom" }, "level and width")],
  );
  const level = el("input", { type: "number", step: "any", class: "model-window-level", "aria-label": "Model window level" });
  const width = el("input", { type: "number", step: "any", min: "0", class: "model-window-width", "aria-label": "Model window width" });
  const numbers = el("span", { class: "window-numbers" }, el("label", {}, "L ", level), el("label", {}, "W ", width));
  const showWindow = () => {
    windowSelect.value = window ? (window.preset ?? "custom") : "";
    level.value = window ? String(window.level) : "40";
    width.value = window ? String(window.width) : "400";
    numbers.hidden = windowSelect.value !== "custom";
  };
  windowSelect.addEventListener("change", () => (numbers.hidden = windowSelect.value !== "custom"));
  showWindow();
  const chosenWindow = () => {
    if (windowSelect.value === "") return null;
    if (windowSelect.value === "custom") return { level: Number(level.value), width: Number(width.value) };
    return { preset: windowSelect.value };
  };
  const save = el("button", { type: "submit" }, "Save");
  const reset = el("button", { type: "button", class: "mapping-default" }, "Default");
  form.replaceChildren(
    ...selects.map((s, i) => el("label", {}, COLOURS[i][1], " ", s)),
    el("label", {}, "Window ", windowSelect),
    numbers,
    save,
    reset,
  );

  async function send(next, nextWindow) {
    showError(errorNode, "");
    const same = JSON.stringify(next) === JSON.stringify(mapping) && JSON.stringify(nextWindow) === JSON.stringify(window && (window.preset ? { preset: window.preset } : { level: window.level, width: window.width }));
    const warning = "Every image's embedding will be computed again with what the model now sees. Go on?";
    if (same || !globalThis.confirm(warning)) return;
    save.disabled = true;
    try {
      const answer = await api(url, { method: "PATCH", json: { mapping: next, window: nextWindow } });
      mapping = answer.mapping;
      window = answer.window;
      selects.forEach((s, i) => (s.value = mapping && mapping[i] !== null ? String(mapping[i]) : ""));
      showWindow();
      summarise();
      const n = answer.embeddings_scheduled;
      hint.textContent = `Saved; ${n} ${n === 1 ? "embedding is" : "embeddings are"} being computed again.`;
    } catch (err) {
      showError(errorNode, err.message);
    } finally {
      save.disabled = false;
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = selects.map((s) => (s.value === "" ? null : Number(s.value)));
    // all three "none" is how the default mapping shows: keep the default
    send(chosen.every((c) => c === null) ? null : chosen, chosenWindow());
  });
  reset.addEventListener("click", () => send(null, null));
}

if (card) {
  show().catch((err) => showError(card.querySelector(".error"), err.message));
}
