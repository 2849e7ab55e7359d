// The Training dataset card of the project page: the train / val / test
// split (counts; owners change the fractions and seed); exports: start
// one, follow its progress (the worker writes the zip), download it when
// done; imports: check a file (a dry run's report), then import it.
// docs/api.md, "Dataset exports", "Dataset imports" and "Splits".

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";

const POLL_MS = 1000;
const SPLITS = ["train", "val", "test"];
const projectId = Number(document.body.dataset.projectId);
const summary = document.getElementById("split-summary");
const splitForm = document.getElementById("split-form");
const exportForm = document.getElementById("export-form");
const progress = document.getElementById("export-progress");
const status = document.getElementById("export-status");
const list = document.getElementById("export-list");
const exportError = exportForm.querySelector(".error");

function showSplits(splits) {
  const counts = SPLITS.map((s) => `${s} ${splits.counts[s]}`).join(" · ");
  const byHand = splits.by_hand ? ` (${splits.by_hand} set by hand)` : "";
  summary.textContent = `Images: ${counts}${byHand}`;
  summary.dataset.counts = JSON.stringify(splits.counts);
  if (!splitForm) return;
  for (const name of SPLITS) splitForm.elements[name].value = Math.round(splits.fractions[name] * 100);
  splitForm.elements.seed.value = splits.seed;
  splitForm.hidden = false;
}

async function loadSplits() {
  try {
    showSplits(await api(endpoints.projectSplits(projectId)));
  } catch (err) {
    summary.textContent = `Splits: ${err.message}`;
  }
}

splitForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fractions = Object.fromEntries(SPLITS.map((s) => [s, Number(splitForm.elements[s].value) / 100]));
  const body = { fractions, seed: Number(splitForm.elements.seed.value) };
  try {
    showSplits(await api(endpoints.projectSplits(projectId), { method: "PATCH", json: body }));
    imageSplits.clear();
    for (const old of imageList.querySelectorAll(".split")) old.remove();
    decorateCards();
  } catch (err) {
    summary.textContent = `Could not split: ${err.message}`;
  }
});

function exportItem(job) {
  const what = `${job.format}${job.options.split !== "all" ? ` (${job.options.split})` : ""}`;
  const when = new Date(job.created_at).toLocaleString();
  const item = el("li", { dataset: { exportId: String(job.id), status: job.status } }, `${what}, ${when}: `);
  if (job.download) {
    const size = `${(job.size / 1024 / 1024).toFixed(1)} MiB`;
    item.append(el("a", { href: job.download, class: "export-download" }, `download (${size})`));
    if (job.expires_at) item.append(`, kept until ${new Date(job.expires_at).toLocaleDateString()}`);
  } else if (job.status === "failed") {
    item.append(el("span", { class: "error" }, `failed: ${job.error}`));
  } else {
    item.append(`${job.status}, ${Math.round(job.progress * 100)}%`);
  }
  const remove = el("button", { type: "button", class: "export-delete link" }, "delete");
  remove.addEventListener("click", () => deleteExport(job, remove));
  item.append(" ", remove);
  return item;
}

// Deleting an export removes its zip from the server (one being written stops).
async function deleteExport(job, button) {
  button.disabled = true;
  try {
    await api(endpoints.exportJob(job.id), { method: "DELETE" });
    await loadExports();
  } catch (err) {
    button.disabled = false;
    showError(exportError, `Could not delete the export: ${err.message}`);
  }
}

async function loadExports() {
  try {
    const jobs = await api(endpoints.projectExports(projectId));
    list.replaceChildren(...jobs.map(exportItem));
  } catch (err) {
    showError(exportError, `Could not list exports: ${err.message}`);
  }
}

async function follow(job) {
  progress.hidden = false;
  while (job.status === "pending" || job.status === "running") {
    progress.value = job.progress;
    status.textContent = job.status === "pending" ? "Export queued…" : `Writing ${job.done_images} of ${job.total_images} images…`;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    try {
      job = await api(endpoints.exportJob(job.id));
    } catch (err) {
      if (err.status !== 404) throw err;
      job = { status: "deleted" }; // deleted from the list while it was written
    }
  }
  progress.hidden = true;
  status.textContent = job.status === "done" ? "Export ready: download it below." : "";
  if (job.status === "failed") showError(exportError, `The export failed: ${job.error}`);
}

function syncPolygons() {
  const coco = exportForm.elements.format.value === "coco";
  exportForm.elements.polygons.disabled = !coco;
  if (!coco) exportForm.elements.polygons.checked = false;
}

exportForm.elements.format.addEventListener("change", syncPolygons);
exportForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(exportError, "");
  const start = document.getElementById("export-start");
  start.disabled = true;
  const f = exportForm.elements;
  const body = { format: f.format.value, split: f.split.value, images: f.images.checked, polygons: f.polygons.checked };
  try {
    const job = await api(endpoints.projectExports(projectId), { method: "POST", json: body });
    await loadExports();
    await follow(job);
  } catch (err) {
    showError(exportError, err.message);
  } finally {
    start.disabled = false;
    await loadExports();
    await loadSplits();
  }
});

// --- each image's split, on its card (owners change it) ---------------------

const imageList = document.getElementById("image-list");
const isOwner = document.body.dataset.isOwner === "true";
const imageSplits = new Map(); // image id -> split

async function decorateCards() {
  const cards = [...imageList.querySelectorAll("li.image-card[data-image-id]")];
  const missing = cards.map((c) => c.dataset.imageId).filter((id) => !imageSplits.has(id));
  if (missing.length) {
    try {
      const answer = await api(`${endpoints.projectSplits(projectId)}?images=${missing.join(",")}`);
      for (const [id, split] of Object.entries(answer.images)) imageSplits.set(id, split);
    } catch {
      return; // the summary line says what went wrong
    }
  }
  for (const card of imageList.querySelectorAll("li.image-card[data-image-id]")) {
    const id = card.dataset.imageId;
    const split = imageSplits.get(id);
    if (!split || card.querySelector(".split")) continue;
    card.querySelector(".meta")?.append(isOwner ? splitSelect(id, split) : el("span", { class: "split" }, split));
  }
}

function splitSelect(id, split) {
  const select = el(
    "select",
    { class: "split", "aria-label": "Split", title: "This image's split (set by hand)" },
    ...SPLITS.map((s) => el("option", { value: s, selected: s === split }, s)),
  );
  select.addEventListener("change", async () => {
    try {
      const body = { images: { [id]: select.value } };
      showSplits(await api(endpoints.projectSplits(projectId), { method: "PATCH", json: body }));
      imageSplits.clear(); // a stack's planes moved together
      for (const old of imageList.querySelectorAll(".split")) old.remove();
      decorateCards();
    } catch (err) {
      summary.textContent = `Could not set the split: ${err.message}`;
    }
  });
  return select;
}

new MutationObserver(() => decorateCards()).observe(imageList, { childList: true });

// --- imports ----------------------------------------------------------------

const importForm = document.getElementById("import-form");

function reportNode(report) {
  const files = report.files.map((f) =>
    el("li", {}, `${f.file} → ${f.image_name}: ${f.instances} instance${f.instances === 1 ? "" : "s"}${f.split ? ` (${f.split})` : ""}`),
  );
  const refused = report.refused.map((r) => el("li", { class: "error" }, `${r.file ? `${r.file}: ` : ""}${r.reason}`));
  const done = report.dry_run
    ? `Would import ${report.instances} instances into ${report.images} image${report.images === 1 ? "" : "s"}`
    : `Imported ${report.imported} instances into ${report.images} image${report.images === 1 ? "" : "s"}`;
  const labels = report.new_labels.length ? `; new labels: ${report.new_labels.join(", ")}` : "";
  const skipped = report.skipped.length ? `; ${report.skipped.length} other files skipped` : "";
  return el(
    "div",
    { class: "import-report", dataset: { instances: String(report.instances), refused: String(report.refused.length) } },
    el("p", {}, `${done}${labels}${skipped}.`),
    el("ul", {}, ...files),
    refused.length ? el("ul", { class: "import-refused" }, ...refused) : "",
  );
}

async function sendImport(dryRun) {
  const f = importForm.elements;
  const body = new FormData();
  body.append("file", f.file.files[0]);
  body.append("format", f.format.value);
  body.append("as", f.as.value);
  body.append("dry_run", dryRun ? "true" : "false");
  const error = importForm.querySelector(".error");
  const report = document.getElementById("import-report");
  const run = document.getElementById("import-run");
  showError(error, "");
  try {
    const answer = await api(endpoints.projectImports(projectId), { method: "POST", form: body });
    report.replaceChildren(reportNode(answer));
    run.disabled = !dryRun || answer.refused.length > 0;
    if (!dryRun) await loadSplits();
  } catch (err) {
    if (err.body?.refused) report.replaceChildren(reportNode(err.body));
    run.disabled = true;
    showError(error, err.message);
  }
}

if (importForm) {
  importForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sendImport(true);
  });
  importForm.addEventListener("change", () => {
    document.getElementById("import-run").disabled = true; // check again first
  });
  document.getElementById("import-run").addEventListener("click", () => sendImport(false));
}

syncPolygons();
loadSplits();
loadExports();
