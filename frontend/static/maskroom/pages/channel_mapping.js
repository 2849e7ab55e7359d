// The project page's "Model channels" card: which image channel the model
// sees as red, green and blue (GET/PATCH /api/projects/{id}/channel-mapping/).
// Owners change it; every embedding of the project is then computed again.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { describeMapping } from "../image/channels.js";

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
  let { mapping, can_edit: canEdit } = await api(url);
  summary.textContent = `Model sees: ${describe(mapping)}`;
  form.hidden = !canEdit;
  if (!canEdit) {
    hint.textContent = "Only the project's owners can change which channels the model sees.";
    return;
  }
  hint.textContent = "Changing this discards every embedding of the project and computes them again.";
  const selects = COLOURS.map(([colour], i) => channelSelect(colour, mapping ? mapping[i] : null));
  const save = el("button", { type: "submit" }, "Save");
  const reset = el("button", { type: "button", class: "mapping-default" }, "Default");
  form.replaceChildren(...selects.map((s, i) => el("label", {}, COLOURS[i][1], " ", s)), save, reset);

  async function send(next) {
    showError(errorNode, "");
    const warning = "Every image's embedding will be computed again with the new channels. Go on?";
    if (JSON.stringify(next) === JSON.stringify(mapping) || !window.confirm(warning)) return;
    save.disabled = true;
    try {
      const answer = await api(url, { method: "PATCH", json: { mapping: next } });
      mapping = answer.mapping;
      selects.forEach((s, i) => (s.value = mapping && mapping[i] !== null ? String(mapping[i]) : ""));
      summary.textContent = `Model sees: ${describe(mapping)}`;
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
    send(selects.map((s) => (s.value === "" ? null : Number(s.value))));
  });
  reset.addEventListener("click", () => send(null));
}

if (card) {
  show().catch((err) => showError(card.querySelector(".error"), err.message));
}
