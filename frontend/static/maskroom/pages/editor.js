// The image editor: wires the viewer, the tools, the socket, the live prompt
// session and the saved instances together; on ?assignment= it shows and
// edits that person's set, with the work bar (work/); for leads on an image with a
// consensus, people's sets and the dispute panel. body[data-ready="true"] once the
// image and its instances are drawn; automated checks wait for it.

import { mountImageView } from "../image/channels.js";
import { mountStackControls } from "../image/stack.js";
import { mountPropagation } from "../image/propagate.js";
import { Viewer } from "../image/viewer.js";
import { installEditing } from "../instances/editing.js";
import { Instances } from "../instances/instances.js";
import { LabelPicker } from "../instances/labels.js";
import { attachSaveState } from "../instances/save_state.js";
import { mountCompleteToggle } from "../instances/complete_toggle.js";
import { applyRemoteChange, reloadAfterBulkChange } from "../instances/remote.js";
import { InstanceStore, isLocalId } from "../instances/store.js";
import { api, endpoints } from "../lib/api.js";
import { showError } from "../lib/dom.js";
import { showEngine } from "../prompting/engine.js";
import { PromptSession } from "../prompting/prompt_session.js";
import { PromptView } from "../prompting/prompt_view.js";
import { ERROR, INSTANCE, INSTANCES, MASK, PRESENCE, PROPAGATION, PROPOSALS, STATUS, SUPERSEDED, resetMessage } from "../prompting/protocol.js";
import { SegmentationSocket } from "../prompting/socket.js";
import { ToolManager } from "../tools/manager.js";
import { createPanTool } from "../tools/pan.js";
import { createPromptTool } from "../tools/prompt.js";
import { mountDispute } from "../work/dispute_panel.js";
import { mountWork, watchReadOnly } from "../work/editor_work.js";
import { Presence } from "../work/presence.js";
import { may } from "../work/roles.js";

const $ = (id) => document.getElementById(id);
const imageId = Number(document.body.dataset.imageId);
const projectId = Number(document.body.dataset.projectId);
// The assignment opened (the page checked it), and the set whose instances
// are shown: the assignment's own, or (null) the image's curated set, which
// a shared assignment of a direct project edits.
const assignmentId = Number(document.body.dataset.assignmentId) || null;
const setId = Number(document.body.dataset.setId) || null;

const viewer = new Viewer($("viewer"));
const session = new PromptSession({ assignment: setId });
const tools = new ToolManager(viewer);
// Every instance change goes through the store (saved in the background, kept across reloads).
const store = new InstanceStore(imageId, {}, { assignment: setId });
watchReadOnly(store, $("read-only-notice"));
const state = { embeddingStatus: "pending", engine: "", connected: false, saving: false };
let instances = null;
let labelPicker = null;
let editing = null; // {history, edits, ...} from installEditing
let propagation = null; // the Propagate panel of a plane of a volume
const promptView = new PromptView({
  session,
  viewer,
  color: () => labelPicker?.selected?.color,
  nodes: { info: $("proposal"), accept: $("accept"), discard: $("discard") },
});

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

function onPoint({ xyImage, label }) {
  if (canPrompt()) sendPrompt(session.addPoint(xyImage.x, xyImage.y, label));
}

function onBox({ x0, y0, x1, y1 }) {
  if (canPrompt()) sendPrompt(session.setBox(x0, y0, x1, y1));
}

// Refine: reopen a saved instance as the current mask; Enter saves it back.
function refine(id) {
  if (!canPrompt()) return;
  const serverId = store.resolve(id);
  if (isLocalId(serverId)) {
    showEditorError("This instance is still being saved; refine it in a moment.");
    return;
  }
  sendPrompt(session.refine(serverId));
}

function onRefine({ xyImage }) {
  const id = instances?.instanceAt(xyImage.x, xyImage.y) ?? null;
  if (id === null) showEditorError("No instance here to refine: hold R and click an instance.");
  else refine(id);
}

async function accept() {
  if (state.saving || !session.mask) return;
  if (!session.mask.area) {
    showEditorError("The mask is empty: add a point, or press Esc.");
    return;
  }
  const label = labelPicker?.selected;
  if (!label && session.refining === null) {
    showEditorError("Choose a label first.");
    return;
  }
  state.saving = true;
  try {
    if (session.refining !== null) editing.edits.setMask(session.refining, session.mask.rle, "refine");
    else editing.edits.create({ labelId: label.id, rle: session.mask.rle, origin: "prompt" });
    discard();
  } catch (err) {
    showEditorError(`Could not save the instance: ${err.message}`);
  } finally {
    state.saving = false;
  }
}

// Returns whether there was something to discard.
function discard() {
  if (session.isEmpty) return false;
  session.clear();
  socket.send(resetMessage());
  showEditorError("");
  return true;
}

// --- the socket -----------------------------------------------------------

const socket = new SegmentationSocket(endpoints.imageSocket(imageId));
const on = (type, handler) => socket.addEventListener(type, (event) => handler(event.detail));
on(STATUS, (message) => {
  state.embeddingStatus = message.embedding_status;
  state.engine = message.engine ?? state.engine;
  state.detail = message.detail ?? "";
  updateBanner();
});
on(MASK, (message) => {
  if (session.applyMask(message)) showEditorError("");
});
on(SUPERSEDED, (message) => session.answered(message.request_id));
on(ERROR, (message) => {
  session.rejected(message.request_id);
  showEditorError(message.message);
  promptView.render();
});
// Working together: the others' saved changes to the set shown, and who is here.
const presence = new Presence({ node: $("presence"), username: document.body.dataset.username });
on(INSTANCE, (message) => {
  if (instances) applyRemoteChange(store, message);
});
on(INSTANCES, (message) => {
  if (instances) reloadAfterBulkChange(store, message).catch((err) => showEditorError(err.message));
});
on(PRESENCE, (message) => presence.apply(message));
on(PROPOSALS, (message) => editing?.proposals.follow(message.job));
on(PROPAGATION, (message) => propagation?.follow(message.job));
on("open", () => {
  state.connected = true;
  updateBanner();
  store.retryNow(); // the server is back: send pending saves without waiting for the backoff
  // A fresh connection knows none of our prompts: send them all again.
  for (const replay of session.replayMessages()) socket.send(replay);
});
on("close", ({ code, retryInMs }) => {
  state.connected = false;
  presence.clear(); // whoever is still there says so again on reconnect
  state.offlineText =
    retryInMs === null
      ? `The server closed the connection (code ${code}).`
      : `Connection lost; reconnecting in ${Math.ceil(retryInMs / 1000)} s…`;
  updateBanner();
});

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

// A set this user may not see the instances of (a blind project's curated set,
// for an annotator) is a 403 with the reason: the image still opens, read-only.
async function loadInstances() {
  try {
    await instances.load();
  } catch (err) {
    if (err.status !== 403) throw err;
    store.setReadOnly(err.detail);
  }
}

// A lead on the curated set of an image with a consensus: people's sets
// over it, and the disputed image's resolution (work/dispute_panel.js).
async function mountPeoplesSets(image) {
  if (assignmentId || !may(document.body.dataset.role, "review")) return;
  try {
    window.maskroom.dispute = await mountDispute({
      node: $("dispute-panel"),
      imageId,
      projectId,
      viewer,
      tools,
      edits: editing.edits,
      store,
      size: [image.height, image.width],
    });
  } catch (err) {
    showEditorError(`Could not load people's sets: ${err.message}`);
  }
}

function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}

async function start() {
  setReady(false);
  const promptTool = createPromptTool({ viewer, refineHeld: () => tools.isHeld("r") });
  promptTool.addEventListener("point", (event) => onPoint(event.detail));
  promptTool.addEventListener("box", (event) => onBox(event.detail));
  promptTool.addEventListener("refine", (event) => onRefine(event.detail));
  tools.register(promptTool);
  tools.register(createPanTool({ viewer }));
  tools.use("prompt");
  tools.attach(viewer.canvas);
  viewer.addEventListener("change", () => {
    $("zoom-level").textContent = `${Math.round(viewer.scale * 100)}%`;
  });
  $("accept").addEventListener("click", refocus(accept));
  $("discard").addEventListener("click", refocus(discard));
  $("zoom-fit").addEventListener("click", refocus(() => viewer.fit()));
  showEngine($("engine-name"), $("engine-hint"));
  socket.connect();

  const storedDisplay = api(endpoints.projectDisplay(projectId)); // the channel settings, fetched alongside
  storedDisplay.catch(() => {}); // its failure is reported where it is awaited
  const [image, project, assignment] = await Promise.all([
    api(endpoints.image(imageId)),
    api(endpoints.project(projectId)),
    assignmentId ? api(endpoints.assignment(assignmentId)) : null,
  ]);
  const labels = project.labels ?? [];
  store.setLabels(labels);
  attachSaveState({ store, viewer, labels, showError: showEditorError });
  labelPicker = new LabelPicker({ node: $("label-picker"), labels, projectId });
  labelPicker.addEventListener("change", () => viewer.requestDraw());
  instances = new Instances({
    imageId,
    labels,
    listNode: $("instance-list"),
    countNode: $("instance-count"),
    viewer,
    store,
  });
  window.maskroom.instances = instances;
  mountCompleteToggle({
    node: $("complete-toggle"),
    image,
    role: document.body.dataset.role,
    workflow: project.workflow ?? {},
    showError: showEditorError,
  });
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
      hasPrompt: () => !session.isEmpty,
      fit: () => viewer.fit(),
      zoom: zoomCentre,
    },
    nodes: { toolbar: $("toolbar"), help: $("help-overlay") },
  });
  Object.assign(window.maskroom, { editing, history: editing.history, edits: editing.edits });
  propagation = mountPropagation({ node: $("propagate"), image, selection: editing.selection, showError: showEditorError });
  window.maskroom.workBar = mountWork({
    assignment,
    project,
    username: document.body.dataset.username,
    role: document.body.dataset.role,
    viewer,
    tools,
    store,
    session,
    node: $("work-bar"),
  });
  const channelNodes = {
    list: $("channel-list"),
    reset: $("channels-reset"),
    saveState: $("display-save-state"),
    modelMapping: $("model-mapping"),
    windowBar: $("window-bar"),
  };
  const [imageView] = await Promise.all([
    mountImageView({ image, projectId, viewer, nodes: channelNodes, stored: storedDisplay }), // tiles, channels
    loadInstances(),
    mountPeoplesSets(image),
  ]);
  window.maskroom.imageView = imageView;
  mountStackControls({ image, viewer, node: $("stack-controls") }); // t/z sliders of a stack's plane
  await imageView.tiles.loaded();
  await nextFrame();
  setReady(true);
}

window.maskroom = { viewer, promptSession: session, tools, socket, state, store, presence, instances: null };
start().catch((err) => {
  console.error(err);
  showEditorError(`Could not load the image: ${err.message}`);
});
