// The project page: upload images, watch their embeddings and each image's
// progress through the work queue, open the editor. The list is a page of
// /progress/ (filtered by state); while any embedding on the page is pending
// or running it is polled. The Work and Workflow cards are project_work.js's.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { showEngine } from "../prompting/engine.js";
import { mayUpload, may } from "../work/roles.js";

const POLL_MS = 1500;
const PAGE_SIZE = 60;
const projectId = Number(document.body.dataset.projectId);
const role = document.body.dataset.role ?? "";
const isOwner = document.body.dataset.isOwner === "true";
const listNode = document.getElementById("image-list");
const emptyNode = document.getElementById("image-empty");
const summaryNode = document.getElementById("image-summary");
const filtersNode = document.getElementById("image-filters");
const pagerNode = document.getElementById("image-pager");
const form = document.getElementById("upload");
const errorNode = form.querySelector(".error");
const doneNode = form.querySelector(".done");
let pollTimer = null;
const view = { state: "", offset: 0 }; // the filter tab and the page shown

// The export link's URL, like every REST URL, comes from lib/api.js.
document.getElementById("export-link").href = endpoints.projectExport(projectId);

const STATUS_TEXT = {
  pending: "queued",
  running: "embedding…",
  coarse: "clickable, tiling…",
  ready: "ready",
  failed: "failed",
};

// A stack (multi-page file) shows as one card: its first plane, with the plane
// count; that plane's embedding status stands for the card (the others of a
// long stack are embedded when opened, see docs/api.md).
function cardsOf(images) {
  const seen = new Set();
  return images.filter((image) => {
    if (!image.stack) return true;
    if (seen.has(image.stack.id)) return false;
    seen.add(image.stack.id);
    return true;
  });
}

function stackLine(stack) {
  const { T = 1, Z = 1 } = stack.shape;
  const axes = [T > 1 ? `t ${T}` : "", Z > 1 ? `z ${Z}` : ""].filter(Boolean).join(" × ");
  return el("span", { class: "stack-count" }, `stack of ${stack.plane_count} planes${axes ? ` (${axes})` : ""}`);
}

function imageItem(image) {
  const status = image.embedding_status || "pending";
  const href = `/images/${image.id}/`;
  const name = image.stack ? image.stack.name : image.name;
  const dataset = image.stack ? { imageId: image.id, status, stackId: image.stack.id } : { imageId: image.id, status };
  return el(
    "li",
    { class: "image-card", dataset },
    el(
      "a",
      { href, class: "thumb" },
      el("img", {
        src: image.display_url || endpoints.imageDisplay(image.id),
        alt: image.name,
        loading: "lazy",
      }),
    ),
    el(
      "div",
      { class: "meta" },
      el("a", { href, class: "name", title: name }, name),
      image.stack ? stackLine(image.stack) : null,
      el("span", { class: "dims" }, `${image.width}×${image.height} · ${image.channels ?? 1} ch · ${image.dtype ?? ""}`),
      el("span", { class: `status status-${status}` }, STATUS_TEXT[status] ?? status),
      image.progress ? progressLine(image.progress) : null,
      image.note ? el("span", { class: "note", title: image.note }, image.note) : null,
      isOwner ? deleteButton(image, name) : null,
    ),
  );
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// "1 of 2 sets · 1 submitted · 0 accepted"
function progressLine(progress) {
  const begun = progress.open + progress.submitted + progress.accepted;
  const text = `${begun} of ${plural(progress.needed, "set")} · ${progress.submitted} submitted · ${progress.accepted} accepted`;
  return el("span", { class: `progress progress-${progress.state}`, dataset: { state: progress.state } }, text);
}

function deleteButton(image, name) {
  const what = image.stack ? `the stack ${name} (${plural(image.stack.plane_count, "plane")})` : name;
  const remove = async () => {
    if (!window.confirm(`Delete ${what} and everything annotated on it?`)) return;
    try {
      await api(image.stack ? endpoints.stack(image.stack.id) : endpoints.image(image.id), { method: "DELETE" });
    } catch (err) {
      summaryNode.textContent = `Could not delete ${name}: ${err.message}`;
      return;
    }
    refresh();
  };
  return el("button", { type: "button", class: "link delete-image", onclick: remove }, "Delete");
}

// Keep existing cards (and their loaded thumbnails); update only what changed.
function renderImages(images) {
  const existing = new Map([...listNode.children].map((node) => [node.dataset.imageId, node]));
  const nodes = images.map((image) => {
    const old = existing.get(String(image.id));
    const status = image.embedding_status || "pending";
    const progress = image.progress?.state ?? "";
    const key = JSON.stringify(image.progress ?? null);
    if (old && old.dataset.status === status && old.dataset.progress === key) return old;
    const node = imageItem(image);
    node.dataset.progress = key;
    node.dataset.state = progress;
    return node;
  });
  listNode.replaceChildren(...nodes);
}

const FILTERS = [
  ["", "All"],
  ["todo", "To do"],
  ["in_progress", "In progress"],
  ["review", "Needs review"],
  ["done", "Done"],
];

function renderFilters(states) {
  const total = Object.values(states).reduce((sum, n) => sum + n, 0);
  const tabs = FILTERS.map(([state, text]) => {
    const count = state ? (states[state] ?? 0) : total;
    return el(
      "button",
      {
        type: "button",
        class: "tab",
        dataset: { state: state || "all" },
        "aria-pressed": String(view.state === state),
        onclick: () => {
          view.state = state;
          view.offset = 0;
          refresh();
        },
      },
      text,
      el("span", { class: "count" }, String(count)),
    );
  });
  filtersNode.replaceChildren(...tabs);
  return total;
}

function renderPager(page) {
  const shown = page.results.length;
  pagerNode.hidden = !page.next && !page.previous;
  document.getElementById("image-previous").disabled = !page.previous;
  document.getElementById("image-next").disabled = !page.next;
  document.getElementById("image-page").textContent = shown
    ? `${view.offset + 1}–${view.offset + shown} of ${page.count}`
    : "";
}

document.getElementById("image-previous").addEventListener("click", () => {
  view.offset = Math.max(0, view.offset - PAGE_SIZE);
  refresh();
});
document.getElementById("image-next").addEventListener("click", () => {
  view.offset += PAGE_SIZE;
  refresh();
});

async function refresh() {
  clearTimeout(pollTimer);
  try {
    const url = endpoints.projectProgress(projectId, { state: view.state, limit: PAGE_SIZE, offset: view.offset });
    const page = await api(url);
    if (!page.results.length && view.offset > 0 && page.count > 0) {
      view.offset = Math.max(0, Math.floor((page.count - 1) / PAGE_SIZE) * PAGE_SIZE); // the last page shrank
      return refresh();
    }
    const images = cardsOf(page.results);
    renderImages(images);
    const total = renderFilters(page.states ?? {});
    renderPager(page);
    emptyNode.hidden = total > 0;
    emptyNode.textContent = mayUpload(role, workflow) ? "No images yet: upload some." : "No images yet.";
    if (total > 0 && !images.length) listNode.replaceChildren(el("li", { class: "muted" }, "No image is in this state."));
    summaryNode.textContent = total ? plural(total, "image") : "";
    const busy = images.some((image) => ["pending", "running", "coarse"].includes(image.embedding_status));
    if (busy) pollTimer = setTimeout(refresh, POLL_MS);
  } catch (err) {
    summaryNode.textContent = `Could not load the images: ${err.message}`;
    pollTimer = setTimeout(refresh, POLL_MS * 4);
  }
}

// Who may upload and start proposals: the role, and the project's workflow.
let workflow = null;
async function applyRole() {
  try {
    workflow = (await api(endpoints.project(projectId))).workflow ?? null;
  } catch {
    workflow = null; // the server still refuses what the role may not do
  }
  form.closest(".card").hidden = !mayUpload(role, workflow);
  const propose = document.getElementById("propose-all");
  if (propose) propose.hidden = !may(role, "propose");
}

// A folder's index and system files are not images (the server skips the
// same ones inside a zip): DICOMDIR, hidden files, macOS resource forks.
const SKIPPED = new Set(["DICOMDIR", "Thumbs.db", "desktop.ini"]);
function folderImage(file) {
  const parts = (file.webkitRelativePath || file.name).split("/");
  return !SKIPPED.has(parts.at(-1)) && !parts.some((p) => p.startsWith(".") || p === "__MACOSX");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const chosen = [...form.elements.file.files, ...[...form.elements.folder.files].filter(folderImage)];
  if (!chosen.length) {
    showError(errorNode, "Choose image files or a folder first.");
    return;
  }
  const data = new FormData();
  for (const file of chosen) data.append("file", file);
  const button = form.querySelector("button[type=submit]");
  const progress = form.querySelector("progress");
  button.disabled = true;
  progress.hidden = false;
  showError(errorNode, "");
  doneNode.textContent = "";
  try {
    const result = await api(endpoints.projectImages(projectId), { method: "POST", form: data });
    const planes = result?.images?.length ?? chosen.length;
    const count = result?.images ? cardsOf(result.images).length : planes; // a stack counts once
    const extra = planes > count ? ` (${planes} planes)` : "";
    doneNode.textContent = `Uploaded ${count} image${count === 1 ? "" : "s"}${extra}.`;
    form.reset();
  } catch (err) {
    showError(errorNode, err.message);
  } finally {
    button.disabled = false;
    progress.hidden = true;
    refresh();
  }
});

showEngine(document.getElementById("engine-name"), document.getElementById("engine-hint"));
applyRole();
refresh();
