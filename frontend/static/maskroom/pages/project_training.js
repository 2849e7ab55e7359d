// The project page's learning panel: train the project's model (owners),
// follow the job (progress, curve, before and after on the validation
// images), cancel it; the versions with their figures, adopt one or download
// its weights; start an evaluation of any model (owners and reviewers). The
// server decides who may; the page only hides what a role cannot do.

import { api, asList, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { drawCurve } from "../training/curve.js";
import { FIGURES, compare, fixed } from "../training/figures.js";

const projectId = Number(document.body.dataset.projectId);
const role = document.body.dataset.role;
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const card = $("training-card");
const errorNode = card.querySelector(".error");

function showFigures(job) {
  $("figures-before").textContent = `before: ${job.before.model ?? job.base_model}`;
  $("figures-after").textContent = `after: ${job.after.model ?? "the new version"}`;
  $("training-figures").querySelector("tbody").replaceChildren(
    ...FIGURES.map(([key, name, direction, digits]) => {
      const verdict = compare(job.after[key], job.before[key], direction);
      return el(
        "tr",
        { "data-figure": key },
        el("th", {}, name),
        el("td", {}, fixed(job.before[key], digits)),
        el("td", { class: verdict }, fixed(job.after[key], digits), verdict ? ` (${verdict})` : ""),
      );
    }),
  );
}

// Which images it learned from and validated on (docs/api.md, "Training").
const SOURCES = {
  splits: "the dataset splits",
  "held out": "held out here (the splits give no val images); test images untouched",
  "held out, test included": "held out here, test images included (too few images outside test)",
};

function splitText(split) {
  if (!split?.train) return "";
  const images = (n) => `${n} image${n === 1 ? "" : "s"}`;
  return `Learns from ${images(split.train.length)}, validated on ${images(split.val.length)}: ${SOURCES[split.source] ?? split.source}.`;
}

function showJob(job) {
  $("training-job").hidden = false;
  const done = ["done", "failed", "cancelled"].includes(job.status);
  const verdict = job.status === "done" && job.version !== null ? ` Version ${job.version}.` : "";
  $("training-status").textContent =
    job.status === "failed" ? `Failed: ${job.error}` : `${job.status}: ${job.message}${verdict}`;
  $("training-status").dataset.status = job.status;
  $("training-progress").value = job.progress;
  $("training-split").textContent = splitText(job.split);
  const cancel = $("training-cancel");
  if (cancel) cancel.hidden = done;
  if (job.curve.length) drawCurve($("training-curve"), job.curve);
  showFigures(job);
  return done;
}

// Follow a job until it finishes; Cancel stops the one followed. The card's
// data-finished names the last job seen finished (the browser test waits on it).
async function follow(jobId) {
  card.dataset.following = String(jobId);
  for (;;) {
    const job = await api(endpoints.trainingJob(jobId));
    if (showJob(job)) {
      await showVersions();
      card.dataset.finished = String(job.id);
      document.dispatchEvent(new CustomEvent("maskroom:model-changed"));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function showVersions() {
  const versions = asList(await api(endpoints.projectModelVersions(projectId)));
  const figure = (v, key, digits) => fixed(v.figures[key], digits);
  $("model-versions").querySelector("tbody").replaceChildren(
    ...versions.map((v) => {
      const actions = el("td", {});
      if (v.in_use) actions.append(el("strong", { class: "in-use" }, "in use"));
      else if (role === "owner") {
        const adopt = el("button", { type: "button", class: "adopt" }, "Use this version");
        adopt.addEventListener("click", () => adoptVersion(v.version, adopt));
        actions.append(adopt);
      }
      if (role === "owner" || role === "reviewer") {
        actions.append(" ", el("a", { href: endpoints.modelCheckpoint(projectId, v.version), download: "" }, "weights"));
      }
      return el(
        "tr",
        { "data-version": String(v.version) },
        el("td", {}, `${v.version} (${v.model})`),
        el("td", {}, v.kind),
        el("td", {}, figure(v, "noc85", 2)),
        el("td", {}, figure(v, "miou_at_1", 3)),
        el("td", {}, figure(v, "proposal_f1", 3)),
        el("td", {}, v.better ? `yes, than ${v.base_model}` : `no, than ${v.base_model}`),
        actions,
      );
    }),
  );
  $("versions-empty").hidden = versions.length > 0;
}

async function adoptVersion(version, button) {
  showError(errorNode, "");
  button.disabled = true;
  try {
    await api(endpoints.modelAdopt(projectId, version), { method: "POST" });
    await showVersions();
    document.dispatchEvent(new CustomEvent("maskroom:model-changed"));
  } catch (err) {
    showError(errorNode, err.message);
    button.disabled = false;
  }
}

// Default and most epochs of the kinds that train in epochs.
const EPOCHS = { decoder: [4, 50], detector: [30, 200], lora: [4, 50] };

function setUpTraining() {
  const form = $("training-form");
  if (!form) return;
  form.elements.kind.addEventListener("change", () => {
    const epochs = EPOCHS[form.elements.kind.value];
    form.elements.epochs.disabled = !epochs;
    if (epochs) [form.elements.epochs.value, form.elements.epochs.max] = epochs.map(String);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(errorNode, "");
    $("training-start").disabled = true;
    try {
      const kind = form.elements.kind.value;
      // Epochs are the decoder's and the detector's; the forest grows in its own stages.
      const json = EPOCHS[kind] ? { kind, epochs: Number(form.elements.epochs.value) } : { kind };
      const job = await api(endpoints.projectTraining(projectId), { method: "POST", json });
      await follow(job.id);
    } catch (err) {
      showError(errorNode, err.message);
    } finally {
      $("training-start").disabled = false;
    }
  });
  $("training-cancel")?.addEventListener("click", async () => {
    try {
      await api(endpoints.trainingCancel(Number(card.dataset.following)), { method: "POST" });
    } catch (err) {
      showError(errorNode, err.message);
    }
  });
}

// --- evaluations ---------------------------------------------------------------

async function setUpEvaluations() {
  const form = $("evaluation-form");
  if (!form) return;
  const models = asList(await api(endpoints.models(projectId)));
  const project = await api(endpoints.project(projectId));
  form.elements.model.replaceChildren(...models.map((m) => el("option", { value: m.name }, m.name)));
  form.elements.model.value = project.model;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("evaluation-status");
    $("evaluation-start").disabled = true;
    try {
      let evaluation = await api(endpoints.projectEvaluations(projectId), {
        method: "POST",
        json: { model: form.elements.model.value, split: form.elements.split.value },
      });
      while (!["done", "failed"].includes(evaluation.status)) {
        status.textContent = `Evaluating ${evaluation.model}… ${Math.round(evaluation.progress * 100)}%`;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        evaluation = await api(endpoints.evaluation(evaluation.id));
      }
      status.textContent = evaluation.status === "done" ? `Evaluated ${evaluation.model}.` : `Failed: ${evaluation.error}`;
      document.dispatchEvent(new CustomEvent("maskroom:evaluated"));
    } catch (err) {
      status.textContent = err.message;
    } finally {
      $("evaluation-start").disabled = false;
    }
  });
}

async function start() {
  setUpTraining();
  await showVersions();
  const [latest] = asList(await api(endpoints.projectTraining(projectId)));
  card.dataset.ready = "true";
  if (latest) await follow(latest.id);
}

start().catch((err) => {
  card.dataset.ready = "error";
  console.error("training panel:", err);
});
setUpEvaluations().catch((err) => console.error("evaluation form:", err));
