// The project page: upload images, watch their embeddings, open the editor.
// While any embedding is pending or running the image list is polled.

import { api, asList, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { showEngine } from "../prompting/engine.js";

const POLL_MS = 1500;
const projectId = Number(document.body.dataset.projectId);
const listNode = document.getElementById("image-list");
const emptyNode = document.getElementById("image-empty");
const summaryNode = document.getElementById("image-summary");
const form = document.getElementById("upload");
const errorNode = form.querySelector(".error");
const doneNode = form.querySelector(".done");
let pollTimer = null;

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
      image.note ? el("span", { class: "note", title: image.note }, image.note) : null,
    ),
  );
}

// Keep existing cards (and their loaded thumbnails); update only what changed.
function renderImages(images) {
  const existing = new Map([...listNode.children].map((node) => [node.dataset.imageId, node]));
  const nodes = images.map((image) => {
    const old = existing.get(String(image.id));
    const status = image.embedding_status || "pending";
    if (old && old.dataset.status === status) return old;
    return imageItem(image);
  });
  listNode.replaceChildren(...nodes);
  emptyNode.hidden = images.length > 0;
  const ready = images.filter((image) => image.embedding_status === "ready").length;
  summaryNode.textContent = images.length
    ? `${images.length} image${images.length === 1 ? "" : "s"}, ${ready} ready to annotate`
    : "";
}

async function refresh() {
  clearTimeout(pollTimer);
  try {
    const images = cardsOf(asList(await api(endpoints.projectImages(projectId))));
    renderImages(images);
    const busy = images.some((image) => ["pending", "running", "coarse"].includes(image.embedding_status));
    if (busy) pollTimer = setTimeout(refresh, POLL_MS);
  } catch (err) {
    summaryNode.textContent = `Could not load the images: ${err.message}`;
    pollTimer = setTimeout(refresh, POLL_MS * 4);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = form.querySelector("input[type=file]");
  if (!input.files.length) return;
  const data = new FormData();
  for (const file of input.files) data.append("file", file);
  const button = form.querySelector("button[type=submit]");
  const progress = form.querySelector("progress");
  button.disabled = true;
  progress.hidden = false;
  showError(errorNode, "");
  doneNode.textContent = "";
  try {
    const result = await api(endpoints.projectImages(projectId), { method: "POST", form: data });
    const planes = result?.images?.length ?? input.files.length;
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
refresh();
