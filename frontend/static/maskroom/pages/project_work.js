// The project page's Work card (take the next set, or the next set to
// review, and open it in the editor) and, for owners, the Workflow card
// (overlap, review, blind, lease, who uploads).

import { api, endpoints } from "../lib/api.js";
import { showError } from "../lib/dom.js";
import { openNext } from "../work/queue.js";

const projectId = Number(document.body.dataset.projectId);
const $ = (id) => document.getElementById(id);

// --- work -------------------------------------------------------------------

function setUpWork() {
  const card = $("work-card");
  if (!card) return; // viewers take no work
  const statusNode = $("work-status");
  const errorNode = card.querySelector(".error");
  // ?done=queue|review: the editor came back because nothing was left.
  const done = new URLSearchParams(window.location.search).get("done");
  if (done) statusNode.textContent = NOTHING[done] ?? "";

  async function take(kind, button) {
    button.disabled = true;
    showError(errorNode, "");
    statusNode.textContent = "";
    try {
      if (!(await openNext(projectId, kind))) statusNode.textContent = NOTHING[kind];
    } catch (err) {
      showError(errorNode, err.message);
    } finally {
      button.disabled = false;
    }
  }
  $("start-annotating").addEventListener("click", (event) => take("queue", event.currentTarget));
  $("review-next")?.addEventListener("click", (event) => take("review", event.currentTarget));
}

const NOTHING = {
  queue: "Nothing left for you to annotate.",
  review: "Nothing waits for review.",
};

// --- workflow ---------------------------------------------------------------

const NUMBERS = ["overlap", "lease_minutes"];
const CHECKS = ["review", "blind", "annotators_upload"];

async function setUpWorkflow() {
  const form = $("workflow-form");
  if (!form) return; // owners only
  const errorNode = form.querySelector(".error");
  const doneNode = form.querySelector(".done");
  const show = (project) => {
    const workflow = project.workflow;
    for (const name of NUMBERS) form.elements[name].value = String(workflow[name]);
    for (const name of CHECKS) form.elements[name].checked = Boolean(workflow[name]);
    form.elements.deidentify_dicom.checked = Boolean(project.deidentify_dicom);
    $("work-summary").textContent = summary(workflow);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(errorNode, "");
    doneNode.textContent = "";
    const workflow = {};
    for (const name of NUMBERS) workflow[name] = Number(form.elements[name].value);
    for (const name of CHECKS) workflow[name] = form.elements[name].checked;
    try {
      const deidentify_dicom = form.elements.deidentify_dicom.checked;
      const json = { workflow, deidentify_dicom };
      show(await api(endpoints.project(projectId), { method: "PATCH", json }));
      doneNode.textContent = "Workflow saved.";
    } catch (err) {
      showError(errorNode, err.message);
    }
  });
  try {
    show(await api(endpoints.project(projectId)));
  } catch (err) {
    showError(errorNode, `Could not load the workflow: ${err.message}`);
  }
}

function summary(workflow) {
  const people = workflow.overlap === 1 ? "one annotator" : `${workflow.overlap} annotators`;
  const review = workflow.review ? "a reviewer checks each set" : "no review";
  const blind = workflow.blind ? ", blind" : "";
  return `Each image gets ${people}; ${review}${blind}.`;
}

async function showSummary() {
  const node = $("work-summary");
  if (!node || $("workflow-form")) return; // owners see it from the workflow form
  try {
    node.textContent = summary((await api(endpoints.project(projectId))).workflow);
  } catch {
    node.textContent = "";
  }
}

setUpWork();
setUpWorkflow();
showSummary();
