// The project page's model panel: which model the project uses (owners can
// switch it), automatic proposals for all images with a progress bar
// (instances/project_proposals.js), and the table of engine evaluations.

import { setUpProjectProposals } from "../instances/project_proposals.js";
import { api, asList, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { fixed } from "../training/figures.js";

const projectId = Number(document.body.dataset.projectId);
const isOwner = document.body.dataset.isOwner === "true";
const $ = (id) => document.getElementById(id);

// --- model ------------------------------------------------------------------

async function listModels(select) {
  const [models, project] = await Promise.all([api(endpoints.models(projectId)), api(endpoints.project(projectId))]);
  select.replaceChildren(
    ...asList(models).map((m) => el("option", { value: m.name }, `${m.name} — ${m.description}`)),
  );
  select.value = project.model;
  return project;
}

async function showModels() {
  const select = $("model-select");
  const errorNode = $("model-card").querySelector(".error");
  let project = await listModels(select);
  select.disabled = !isOwner;
  // A trained version adopted on this page (pages/project_training.js).
  document.addEventListener("maskroom:model-changed", async () => {
    project = await listModels(select);
  });
  $("model-hint").textContent = isOwner
    ? "Switching keeps every label; the new model's embeddings are computed for every image."
    : "Only the project's owners can switch the model.";
  select.addEventListener("change", async () => {
    showError(errorNode, "");
    select.disabled = true;
    try {
      const updated = await api(endpoints.project(projectId), { method: "PATCH", json: { model: select.value } });
      select.value = updated.model;
      $("model-hint").textContent = `Now using ${updated.model}; embeddings are being computed.`;
    } catch (err) {
      showError(errorNode, err.message);
      select.value = project.model;
    } finally {
      select.disabled = false;
    }
  });
}

// --- evaluations --------------------------------------------------------------


async function showEvaluations() {
  const rows = asList(await api(endpoints.projectEvaluations(projectId))).map((e) =>
    el(
      "tr",
      {},
      el("td", {}, e.status === "done" ? e.model : `${e.model} (${e.status})`),
      el("td", {}, e.images === null ? "–" : String(e.images)),
      el("td", {}, String(e.objects)),
      el("td", {}, fixed(e.noc85, 2)),
      el("td", {}, fixed(e.noc90, 2)),
      el("td", {}, fixed(e.miou_at_1, 3)),
      el("td", {}, fixed(e.miou_at_3, 3)),
      el("td", {}, fixed(e.miou_at_5, 3)),
      el("td", {}, e.never_90_share === null ? "–" : `${Math.round(e.never_90_share * 100)}%`),
      el("td", {}, fixed(e.box_iou, 3)),
      el("td", {}, fixed(e.proposal_f1, 3)),
      el("td", {}, fixed(e.proposal_pq, 3)),
      el("td", {}, new Date(e.created_at).toLocaleString()),
    ),
  );
  $("evaluations").querySelector("tbody").replaceChildren(...rows);
  $("evaluations-empty").hidden = rows.length > 0;
}

for (const [name, step] of [
  ["models", showModels],
  ["proposals", () => setUpProjectProposals(projectId)],
  ["evaluations", showEvaluations],
]) {
  if (name === "evaluations") document.addEventListener("maskroom:evaluated", () => showEvaluations());
  step().catch((err) => console.error(`project ${name} panel:`, err));
}
