// The image editor: wires the viewer, the tools, the socket, the current
// proposal and the saved instances together. body[data-ready="true"] once the
// image and its instances are drawn; automated checks wait for it.

import { api, endpoints } from "../lib/api.js";
import { mountImageView } from "../image/channels.js";
import { showError } from "../lib/dom.js";
import { installEditing } from "../instances/editing.js";
import { showEngine } from "../prompting/engine.js";
import { Instances } from "../instances/instances.js";
import { LabelPicker } from "../instances/labels.js";
import { maskBitmap } from "../image/overlay.js";
import { Proposal } from "../prompting/prompt_session.js";
import { attachSaveState } from "../instances/save_state.js";
import { ERROR, MASK, NEGATIVE, POSITIVE, STATUS, SUPERSEDED, resetMessage } from "../prompting/protocol.js";
import { SegmentationSocket } from "../prompting/socket.js";
import { mountStackControls } from "../image/stack.js";
import { InstanceStore, isLocalId } from "../instances/store.js";
import { ToolManager } from "../tools/manager.js";
import { createPanTool } from "../tools/pan.js";
import { createPromptTool } from "../tools/prompt.js";
import { Viewer } from "../image/viewer.js";

const $ = (id) => document.getElementById(id);
const imageId = Number(document.body.dataset.imageId);
const projectId = Number(document.body.dataset.projectId);

const viewer = new Viewer($("viewer"));
const proposal = new Proposal();
const tools = new ToolManager(viewer);
// Every instance change goes through the store (saved in the background, kept across reloads).
const store = new InstanceStore(imageId);
const state = { embeddingStatus: "pending", engine: "", connected: false, saving: false };
let instances = null;
let labelPicker = null;
let editing = null; // {history, edits, ...} from installEditing
let proposalBitmap = null; // {key, canvas}

const STATUS_TEXT = {
  pending: "Waiting for the worker to compute the embedding…",
  running: "Computing the embedding…",
  coarse: "Clickable at reduced resolution; computing the full-resolution tiles…",
  ready: "Ready: click an object to segment it",
  failed: "The embedding failed",
};

function setReady(ready) {
  document.body.dataset.ready = ready ? "true" : "false";
}

function showEditorError(message) {
  showError($("editor-error"), message);
}

function updateBanner() {
  const banner = $("status-banner");
  let status = state.embeddingStatus;
  let text = STATUS_TEXT[status] ?? status;
  if (!state.connected) {
    status = state.offlineText ? "offline" : "connecting";
    text = state.offlineText ?? "Connecting…";
  } else if (status === "failed" && state.detail) {
    text = `${text}: ${state.detail}`;
  }
  banner.dataset.status = status;
  banner.textContent = state.engine && state.connected ? `${text} · ${state.engine}` : text;
}

// --- prompts --------------------------------------------------------------

function canPrompt() {
  if (!state.connected) {
    showEditorError("Not connected to the server; retrying.");
    return false;
  }
  if (state.embeddingStatus !== "ready" && state.embeddingStatus !== "coarse") {
    showEditorError("The embedding is not ready yet; prompts work once it is.");
    return false;
  }
  return true;
}

function sendPrompt(message) {
  showEditorError("");
  if (!socket.send(message)) showEditorError("Not connected to the server; retrying.");
}

function onPoint(xyImage, label) {
  if (canPrompt()) sendPrompt(proposal.addPoint(xyImage.x, xyImage.y, label));
}

function onBox(x0, y0, x1, y1) {
  if (canPrompt()) sendPrompt(proposal.setBox(x0, y0, x1, y1));
}

// Refine: reopen a saved instance as the current mask; Enter saves it back.
function refine(id) {
  if (!canPrompt()) return;
  const serverId = store.resolve(id);
  if (isLocalId(serverId)) {
    showEditorError("This instance is still being saved; refine it in a moment.");
    return;
  }
  sendPrompt(proposal.refine(serverId));
}

function onRefine(xyImage) {
  const id = instances?.instanceAt(xyImage.x, xyImage.y) ?? null;
  if (id === null) showEditorError("No instance here to refine: hold R and click an instance.");
  else refine(id);
}

async function accept() {
  if (state.saving || !proposal.mask) return;
  if (!proposal.mask.area) {
    showEditorError("The mask is empty: add a point, or press Esc.");
    return;
  }
  const label = labelPicker?.selected;
  if (!label && proposal.refining === null) {
    showEditorError("Choose a label first.");
    return;
  }
  state.saving = true;
  try {
    if (proposal.refining !== null) editing.edits.setMask(proposal.refining, proposal.mask.rle, "refine");
    else editing.edits.create({ labelId: label.id, rle: proposal.mask.rle });
    discard();
  } catch (err) {
    showEditorError(`Could not save the instance: ${err.message}`);
  } finally {
    state.saving = false;
  }
}

// Returns whether there was something to discard.
function discard() {
  if (proposal.isEmpty) return false;
  proposal.clear();
  socket.send(resetMessage());
  showEditorError("");
  return true;
}

// --- drawing the proposal -------------------------------------------------

function drawProposal(ctx, view) {
  const mask = proposal.mask;
  const color = labelPicker?.selected?.color ?? "#ffcc00";
  if (mask && mask.crop.area > 0) {
    const key = `${mask.requestId}:${color}`;
    if (proposalBitmap?.key !== key) {
      proposalBitmap = { key, canvas: maskBitmap(mask.crop, color, { fill: 0.55, edge: 1, edgeColor: "#ffffff" }) };
    }
    ctx.drawImage(proposalBitmap.canvas, mask.crop.x0, mask.crop.y0);
  }
  if (proposal.box) {
    const [x0, y0, x1, y1] = proposal.box;
    ctx.lineWidth = 2 / view.scale;
    ctx.strokeStyle = "#ffffff";
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  for (const [x, y, label] of proposal.points) {
    ctx.beginPath();
    ctx.arc(x, y, 5 / view.scale, 0, 2 * Math.PI);
    ctx.fillStyle = label === POSITIVE ? "#22c55e" : "#ef4444";
    ctx.fill();
    ctx.lineWidth = 1.5 / view.scale;
    ctx.strokeStyle = "#ffffff";
    ctx.stroke();
  }
}

function renderProposal() {
  const node = $("proposal");
  const mask = proposal.mask;
  node.dataset.area = String(mask ? mask.area : 0);
  node.dataset.requestId = String(mask ? mask.requestId : 0);
  node.classList.toggle("muted", !mask);
  const prompts = describePrompts();
  if (mask) {
    node.textContent = `${mask.area} px · score ${Number(mask.score).toFixed(2)} · ${prompts}`;
  } else if (!proposal.isEmpty) {
    node.textContent = `Segmenting… (${prompts})`;
  } else {
    node.textContent = "Click an object to segment it.";
  }
  $("accept").disabled = !mask;
  $("discard").disabled = proposal.isEmpty;
  viewer.requestDraw();
}

function describePrompts() {
  const positives = proposal.points.filter((p) => p[2] === POSITIVE).length;
  const negatives = proposal.points.filter((p) => p[2] === NEGATIVE).length;
  const parts = [];
  if (positives) parts.push(`${positives} positive`);
  if (negatives) parts.push(`${negatives} negative`);
  if (proposal.box) parts.push("box");
  if (proposal.refining !== null) parts.unshift(`refining #${proposal.refining}`);
  return parts.join(", ") || "no prompts";
}

// --- the socket -----------------------------------------------------------

const socket = new SegmentationSocket(
  endpoints.imageSocket(imageId),
  {
    [STATUS]: (message) => {
      state.embeddingStatus = message.embedding_status;
      state.engine = message.engine ?? state.engine;
      state.detail = message.detail ?? "";
      updateBanner();
    },
    [MASK]: (message) => {
      if (proposal.applyMask(message)) showEditorError("");
    },
    [SUPERSEDED]: (message) => proposal.answered(message.request_id),
    [ERROR]: (message) => {
      proposal.rejected(message.request_id);
      showEditorError(message.message);
      renderProposal();
    },
  },
  {
    onOpen: () => {
      state.connected = true;
      updateBanner();
      store.retryNow(); // the server is back: send pending saves without waiting for the backoff
      // A fresh connection knows none of our prompts: send them all again.
      for (const replay of proposal.replayMessages()) socket.send(replay);
    },
    onClose: ({ code, retryInMs }) => {
      state.connected = false;
      state.offlineText =
        retryInMs === null
          ? `The server closed the connection (code ${code}).`
          : `Connection lost; reconnecting in ${Math.ceil(retryInMs / 1000)} s…`;
      updateBanner();
    },
  },
);

// --- keys and buttons (keys: tools/shortcuts.js, wired in instances/editing.js)

function zoomCentre(factor) {
  const rect = viewer.canvas.getBoundingClientRect();
  viewer.zoomAt({ x: rect.left + rect.width / 2, y: rect.top + rect.height / 2 }, factor);
}

function refocus(action) {
  return () => {
    action();
    viewer.canvas.focus({ preventScroll: true });
  };
}

// --- start ----------------------------------------------------------------

function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}

async function start() {
  setReady(false);
  tools.register(createPromptTool({ viewer, onPoint, onBox, onRefine, refineHeld: () => tools.isHeld("r") }));
  tools.register(createPanTool({ viewer }));
  tools.use("prompt");
  tools.attach(viewer.canvas);
  viewer.addLayer(drawProposal, 20);
  viewer.onChange(() => {
    $("zoom-level").textContent = `${Math.round(viewer.scale * 100)}%`;
  });
  proposal.onChange(renderProposal);
  $("accept").addEventListener("click", refocus(accept));
  $("discard").addEventListener("click", refocus(discard));
  $("zoom-fit").addEventListener("click", refocus(() => viewer.fit()));
  showEngine($("engine-name"), $("engine-hint"));
  socket.connect();

  const storedDisplay = api(endpoints.projectDisplay(projectId)); // the channel settings, fetched alongside
  storedDisplay.catch(() => {}); // its failure is reported where it is awaited
  const [image, project] = await Promise.all([
    api(endpoints.image(imageId)),
    api(endpoints.project(projectId)),
  ]);
  const labels = project.labels ?? [];
  store.setLabels(labels);
  attachSaveState({ store, viewer, labels, onError: showEditorError });
  labelPicker = new LabelPicker({
    node: $("label-picker"),
    labels,
    projectId,
    onChange: () => viewer.requestDraw(),
  });
  instances = new Instances({
    imageId,
    labels,
    listNode: $("instance-list"),
    countNode: $("instance-count"),
    viewer,
    onError: showEditorError,
    store,
  });
  window.maskroom.instances = instances;
  editing = installEditing({
    viewer,
    tools,
    store,
    instances,
    labelPicker,
    showError: showEditorError,
    editor: {
      accept,
      discard,
      refine,
      hasProposal: () => !proposal.isEmpty,
      fit: () => viewer.fit(),
      zoom: zoomCentre,
    },
    nodes: { toolbar: $("toolbar"), help: $("help-overlay") },
  });
  Object.assign(window.maskroom, { editing, history: editing.history, edits: editing.edits });
  const channelNodes = {
    list: $("channel-list"),
    reset: $("channels-reset"),
    saveState: $("display-save-state"),
    modelMapping: $("model-mapping"),
  };
  const [imageView] = await Promise.all([
    mountImageView({ image, projectId, viewer, nodes: channelNodes, stored: storedDisplay }), // tiles, channels
    instances.load(),
  ]);
  window.maskroom.imageView = imageView;
  mountStackControls({ image, viewer, node: $("stack-controls") }); // t/z sliders of a stack's plane
  await imageView.tiles.loaded();
  await nextFrame();
  setReady(true);
}

window.maskroom = { viewer, proposal, tools, socket, state, store, instances: null };
start().catch((err) => {
  console.error(err);
  showEditorError(`Could not load the image: ${err.message}`);
});
