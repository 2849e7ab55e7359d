// The editing tools wired into the editor: select, brush, eraser and polygon
// (beside prompt and pan, which pages/editor.js registers), the undo history, the
// toolbar, the keyboard shortcuts and their help overlay.
//
// Every change to an instance goes through Edits (edits.js): one store call
// and one undoable command per user action.

import { Edits } from "./edits.js";
import { el } from "../lib/dom.js";
import { History } from "./history.js";
import { installProposalReview } from "./proposal_review.js";
import { HelpOverlay, Shortcuts, TOOLS } from "../tools/shortcuts.js";
import { BrushSize, createBrushTool } from "../tools/brush.js";
import { createEraserTool } from "../tools/eraser.js";
import { createPolygonTool } from "../tools/polygon.js";
import { createSelectTool } from "../tools/select.js";

const BRUSH_STEP = 1.25;

// editor: {accept(), discard() -> bool (something was discarded), hasPrompt(),
//          refine(instanceId), fit(), zoom(factor)}; nodes: {toolbar, help}.
export function installEditing({ viewer, tools, store, instances, labelPicker, showError, editor, nodes }) {
  const history = new History();
  const edits = new Edits({ store, history });
  const size = new BrushSize();
  const selection = {
    ids: () => [...instances.selected],
    set: (ids) => instances.setSelected(ids),
  };
  const context = {
    viewer,
    edits,
    store,
    instances,
    selection,
    size,
    showError,
    labelId: () => labelPicker.selected?.id ?? null,
    imageSize: () => [viewer.height, viewer.width],
  };
  tools.register(createSelectTool(context));
  tools.register(createBrushTool(context));
  tools.register(createEraserTool(context));
  tools.register(createPolygonTool(context));

  // The list's relabel and delete buttons go through Edits too: undoable like the keys.
  instances.list.addEventListener("relabel", (event) => attempt(() => edits.relabel([event.detail.id], event.detail.labelId)));
  instances.list.addEventListener("delete", (event) => attempt(() => edits.remove([event.detail.id])));

  function attempt(action) {
    try {
      showError("");
      return action();
    } catch (err) {
      showError(err.message);
      return undefined;
    }
  }

  // From the button: says what to do without a single selection. From the
  // R key: silent then, as R is also held down to refine by a click.
  function refineSelected(event) {
    // With a proposal selected, R rejects it (proposal_review.js) instead.
    if (event && review.hasSelectedProposal()) return false;
    const ids = selection.ids();
    if (ids.length !== 1) {
      if (!event) showError("Select one instance to refine, or hold R and click it.");
      return false;
    }
    if (event?.repeat) return true;
    tools.use("prompt");
    editor.refine(ids[0]);
    return true;
  }

  const actions = {
    refine: refineSelected,
    merge: () => {
      const ids = selection.ids();
      if (ids.length < 2) {
        showError("Select two instances to merge: click one, Shift+click the other (Select tool, V).");
        return;
      }
      attempt(() => {
        edits.merge(ids[0], ids.slice(1));
        selection.set([ids[0]]);
      });
    },
    delete: () => {
      const ids = selection.ids();
      if (!ids.length) return false;
      attempt(() => edits.remove(ids));
      return true;
    },
    undo: () => attempt(() => history.undo()),
    redo: () => attempt(() => history.redo()),
    help: () => help.toggle(),
  };

  const review = installProposalReview({
    imageId: store.imageId,
    store,
    instances,
    edits,
    selection,
    labelId: context.labelId,
    showError,
  });

  const handlers = {
    ...Object.fromEntries(TOOLS.map((tool) => [`tool:${tool.name}`, () => tools.use(tool.name)])),
    ...actions,
    ...review.handlers,
    accept: () => {
      if (!editor.hasPrompt()) return false;
      editor.accept();
      return true;
    },
    escape: () => {
      if (editor.discard()) return true;
      if (!selection.ids().length) return false;
      selection.set([]);
      return true;
    },
    "brush:smaller": () => size.scale(1 / BRUSH_STEP),
    "brush:bigger": () => size.scale(BRUSH_STEP),
    // With a selection (and no mask in progress) 1-9 relabel it; else they choose the label.
    label: (event) => {
      const label = labelPicker.labels[Number(event.key) - 1];
      if (!label) return false;
      const ids = selection.ids();
      if (ids.length && !editor.hasPrompt()) attempt(() => edits.relabel(ids, label.id));
      else labelPicker.select(label);
      return true;
    },
    fit: () => editor.fit(),
    zoomIn: () => editor.zoom(1.25),
    zoomOut: () => editor.zoom(0.8),
  };

  const help = new HelpOverlay(nodes.help);
  help.addEventListener("close", () => viewer.canvas.focus({ preventScroll: true }));
  const shortcuts = new Shortcuts({ tools, handlers, help });
  buildToolbar({ node: nodes.toolbar, tools, history, size, actions, viewer, extra: review.controls });
  return { history, edits, size, shortcuts, help, selection, proposals: review };
}

function buildToolbar({ node, tools, history, size, actions, viewer, extra }) {
  const refocus = (action) => () => {
    action(); // no argument: a button, not a key
    viewer.canvas.focus({ preventScroll: true });
  };
  const toolButtons = TOOLS.map((tool) =>
    el(
      "button",
      {
        type: "button",
        class: "tool",
        dataset: { tool: tool.name },
        "aria-pressed": "false",
        title: `${tool.title} (${tool.key.toUpperCase()}): ${tool.does}`,
        onclick: refocus(() => tools.use(tool.name)),
      },
      tool.title,
      el("kbd", {}, tool.key.toUpperCase()),
    ),
  );
  const button = (id, text, key, title, action) =>
    el("button", { type: "button", id, title: `${title} (${key})`, onclick: refocus(action) }, text, el("kbd", {}, key));
  const undo = button("undo", "Undo", "Ctrl+Z", "Undo the last edit", actions.undo);
  const redo = button("redo", "Redo", "Ctrl+Y", "Redo", actions.redo);
  const sizeNode = el("span", { id: "brush-size", class: "brush-size", title: "Brush and eraser radius, in image pixels: [ and ]" });
  node.replaceChildren(
    el("div", { class: "tool-group" }, toolButtons),
    el(
      "div",
      { class: "tool-group" },
      button("refine", "Refine", "R", "Reopen the selected instance as the current mask; or hold R and click an instance", actions.refine),
      button("merge", "Merge", "M", "Merge the selected instances into the first one selected", actions.merge),
      button("delete-selected", "Delete", "Del", "Delete the selected instances", actions.delete),
    ),
    el("div", { class: "tool-group" }, undo, redo),
    el("div", { class: "tool-group proposals" }, extra),
    el("div", { class: "tool-group" }, sizeNode, button("help-button", "Help", "?", "Keys and mouse", actions.help)),
  );
  const showTool = () => {
    for (const b of toolButtons) b.setAttribute("aria-pressed", String(b.dataset.tool === tools.active?.name));
  };
  const showHistory = () => {
    undo.disabled = !history.canUndo;
    redo.disabled = !history.canRedo;
  };
  const showSize = () => {
    sizeNode.textContent = `Radius ${size.radius} px`;
    viewer.requestDraw();
  };
  tools.addEventListener("toolchange", showTool);
  history.addEventListener("change", showHistory);
  size.addEventListener("change", showSize);
  showTool();
  showHistory();
  showSize();
}
