// Every key and mouse gesture of the editor, in one table. The keyboard
// dispatcher, the toolbar's key hints and the help overlay (?) all read it.
//
// An entry: {group, keys: [text shown], does, action?, match?}. `match(event)`
// picks the keydown events of an entry with an `action`; the editor gives a
// handler per action (returning false leaves the key to others). Entries
// without an action only document a gesture or a key handled elsewhere (the
// active tool's onKey, the instance display's O and H).

import { DISPLAY_KEYS } from "../instances/display.js";
import { el, isTyping } from "../lib/dom.js";

const plain = (key) => (event) => !event.ctrlKey && !event.metaKey && !event.altKey && event.key.toLowerCase() === key;
const withCtrl = (key, shift) => (event) =>
  (event.ctrlKey || event.metaKey) && !event.altKey && event.shiftKey === shift && event.key.toLowerCase() === key;

// The tools, in toolbar order: {name, key, title}.
export const TOOLS = [
  { name: "prompt", key: "p", title: "Prompt", does: "click a point, right-click a negative point, drag a box" },
  { name: "select", key: "v", title: "Select", does: "click an instance to select it, Shift+click to add one" },
  { name: "brush", key: "b", title: "Brush", does: "paint into the selected instance (a new one if none is selected)" },
  { name: "eraser", key: "e", title: "Eraser", does: "erase from the selected instance" },
  { name: "polygon", key: "l", title: "Polygon", does: "click the vertices; double-click or Enter closes it into a new instance" },
];

export const SHORTCUTS = [
  ...TOOLS.map((tool) => ({
    group: "Tools",
    keys: [tool.key.toUpperCase()],
    does: `${tool.title}: ${tool.does}`,
    action: `tool:${tool.name}`,
    match: plain(tool.key),
  })),
  { group: "Tools", keys: ["Space+drag", "Middle-drag"], does: "pan, with any tool" },
  { group: "Tools", keys: ["Wheel"], does: "zoom about the pointer" },

  { group: "Prompt", keys: ["Click"], does: "positive point" },
  { group: "Prompt", keys: ["Right-click", "Alt+click"], does: "negative point" },
  { group: "Prompt", keys: ["Drag"], does: "box" },
  { group: "Prompt", keys: ["R+click"], does: "refine: reopen the instance under the pointer as the current mask" },
  { group: "Prompt", keys: ["R"], does: "refine the selected instance", action: "refine", match: plain("r") },
  { group: "Prompt", keys: ["Enter"], does: "accept: save the mask (a refined instance is updated)", action: "accept", match: plain("enter") },
  { group: "Prompt", keys: ["Esc"], does: "discard the mask, cancel a polygon, or clear the selection", action: "escape", match: plain("escape") },

  { group: "Proposals", keys: ["A"], does: "accept the selected proposal", action: "proposal:accept", match: plain("a") },
  { group: "Proposals", keys: ["R"], does: "reject the selected proposal (with a proposal selected)", action: "proposal:reject", match: plain("r") },
  { group: "Proposals", keys: ["N"], does: "select and centre the next proposal", action: "proposal:next", match: plain("n") },

  { group: "Brush and eraser", keys: ["["], does: "smaller brush", action: "brush:smaller", match: plain("[") },
  { group: "Brush and eraser", keys: ["]"], does: "bigger brush", action: "brush:bigger", match: plain("]") },
  { group: "Polygon", keys: ["Backspace"], does: "remove the last vertex (while drawing)" },

  { group: "Instances", keys: ["Delete", "Backspace"], does: "delete the selected instances", action: "delete", match: (e) => plain("delete")(e) || plain("backspace")(e) },
  { group: "Instances", keys: ["1-9"], does: "relabel the selected instances, or choose the label for new ones", action: "label", match: (e) => !e.ctrlKey && !e.metaKey && !e.altKey && /^[1-9]$/.test(e.key) },
  { group: "Instances", keys: ["M"], does: "merge the selected instances into the first one selected", action: "merge", match: plain("m") },
  ...DISPLAY_KEYS.map(({ key, does }) => ({ group: "Instances", keys: [key], does })),

  { group: "Edit", keys: ["Ctrl+Z"], does: "undo", action: "undo", match: withCtrl("z", false) },
  { group: "Edit", keys: ["Ctrl+Shift+Z", "Ctrl+Y"], does: "redo", action: "redo", match: (e) => withCtrl("z", true)(e) || withCtrl("y", false)(e) },

  { group: "View", keys: ["F"], does: "fit the image to the window", action: "fit", match: plain("f") },
  { group: "View", keys: ["+"], does: "zoom in", action: "zoomIn", match: (e) => !e.ctrlKey && !e.metaKey && (e.key === "+" || e.key === "=") },
  { group: "View", keys: ["-"], does: "zoom out", action: "zoomOut", match: (e) => !e.ctrlKey && !e.metaKey && e.key === "-" },
  { group: "Help", keys: ["?"], does: "show or hide this help", action: "help", match: (e) => e.key === "?" },
];

// Listens to keydown on window: the help overlay first, then the active tool
// (tools.handleKey), then the table.
export class Shortcuts {
  // handlers: {[action]: (event) => boolean | void}; help: HelpOverlay.
  constructor({ tools, handlers, help }) {
    this.tools = tools;
    this.handlers = handlers;
    this.help = help;
    window.addEventListener("keydown", (event) => this.onKeyDown(event));
  }

  onKeyDown(event) {
    if (event.defaultPrevented || isTyping(event.target)) return;
    if (this.help?.isOpen) {
      if (event.key === "Escape" || event.key === "?") {
        event.preventDefault();
        this.help.close();
      }
      return;
    }
    if (this.tools.handleKey(event)) {
      event.preventDefault();
      return;
    }
    for (const entry of SHORTCUTS) {
      if (!entry.action || !entry.match(event)) continue;
      const handler = this.handlers[entry.action];
      if (handler && handler(event) !== false) {
        event.preventDefault();
        return;
      }
    }
  }
}

// The "?" overlay: every entry of the table, by group. Events: "close".
export class HelpOverlay extends EventTarget {
  constructor(node) {
    super();
    this.node = node;
    node.replaceChildren(this.render());
    node.addEventListener("click", (event) => {
      if (event.target === node || event.target.closest("[data-close]")) this.close();
    });
  }

  get isOpen() {
    return !this.node.hidden;
  }

  toggle() {
    if (this.isOpen) this.close();
    else this.open();
  }

  open() {
    this.node.hidden = false;
    this.node.querySelector("[data-close]")?.focus({ preventScroll: true });
  }

  close() {
    if (!this.isOpen) return;
    this.node.hidden = true;
    this.dispatchEvent(new Event("close"));
  }

  render() {
    const groups = new Map();
    for (const entry of SHORTCUTS) {
      if (!groups.has(entry.group)) groups.set(entry.group, []);
      groups.get(entry.group).push(entry);
    }
    const sections = [...groups].map(([group, entries]) =>
      el(
        "section",
        { class: "help-group" },
        el("h3", {}, group),
        el(
          "dl",
          {},
          entries.flatMap((entry) => [
            el("dt", { dataset: { action: entry.action ?? "" } }, entry.keys.flatMap((key, i) => [i ? " / " : null, el("kbd", {}, key)])),
            el("dd", {}, entry.does),
          ]),
        ),
      ),
    );
    return el(
      "div",
      { class: "help-card", role: "document" },
      el("header", {}, el("h2", { id: "help-title" }, "Keys and mouse"), el("button", { type: "button", class: "icon", "data-close": "", "aria-label": "Close help" }, "✕")),
      el("div", { class: "help-groups" }, sections),
    );
  }
}
