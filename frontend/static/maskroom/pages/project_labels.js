// The project page's labels editor (owners only): add, rename, recolour,
// move up or down, delete; a label in use is deleted by merging it into
// another, picked here. Everyone else sees the list the page was served with.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";

const projectId = Number(document.body.dataset.projectId);
const card = document.getElementById("labels-card");
const editor = card?.querySelector("#label-editor");

async function change(action, errorNode) {
  showError(errorNode, "");
  try {
    await action();
  } catch (err) {
    showError(errorNode, err.message);
  }
  await load(errorNode);
}

function mergePicker(label, labels, errorNode) {
  const select = el(
    "select",
    { "aria-label": `Merge ${label.name} into` },
    labels.filter((other) => other.id !== label.id).map((other) => el("option", { value: other.id }, other.name)),
  );
  const merge = () =>
    change(() => api(endpoints.labelMerge(label.id, select.value), { method: "DELETE" }), errorNode);
  return el(
    "div",
    { class: "row merge-picker" },
    el("span", { class: "hint" }, "Merge into"),
    select,
    el("button", { type: "button", onclick: merge }, "Merge and delete"),
  );
}

function labelRow(label, index, labels, errorNode) {
  const patch = (json) => change(() => api(endpoints.label(label.id), { method: "PATCH", json }), errorNode);
  const row = el("li", { class: "label-row", dataset: { labelId: label.id } });
  const remove = async () => {
    showError(errorNode, "");
    try {
      await api(endpoints.label(label.id), { method: "DELETE" });
      await load(errorNode);
    } catch (err) {
      showError(errorNode, err.message);
      if (err.status === 409 && labels.length > 1) row.append(mergePicker(label, labels, errorNode));
    }
  };
  row.append(
    el("input", { type: "color", value: label.color, "aria-label": `Colour of ${label.name}`, onchange: (e) => patch({ color: e.target.value }) }),
    el("input", { type: "text", value: label.name, maxLength: 100, "aria-label": "Label name", onchange: (e) => patch({ name: e.target.value }) }),
    el("button", { type: "button", class: "link", title: "Move up", disabled: index === 0, onclick: () => patch({ order: index - 1 }) }, "↑"),
    el("button", { type: "button", class: "link", title: "Move down", disabled: index === labels.length - 1, onclick: () => patch({ order: index + 1 }) }, "↓"),
    el("button", { type: "button", class: "link", onclick: remove }, "Delete"),
  );
  return row;
}

async function load(errorNode) {
  try {
    const { labels } = await api(endpoints.project(projectId));
    editor.replaceChildren(...labels.map((label, i) => labelRow(label, i, labels, errorNode)));
  } catch (err) {
    showError(errorNode, err.message);
  }
}

if (editor) {
  const errorNode = card.querySelector(".error");
  const form = card.querySelector("#label-add");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const json = { name: form.elements.name.value }; // the server picks the colour: recolour after
    change(async () => {
      await api(endpoints.projectLabels(projectId), { method: "POST", json });
      form.reset();
    }, errorNode);
  });
  card.querySelector("#label-list").hidden = true;
  editor.hidden = false;
  load(errorNode);
}
