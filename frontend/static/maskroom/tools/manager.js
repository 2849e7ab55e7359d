// The tool manager: one active tool receives the canvas's pointer events in
// image pixels; the middle button and Space+drag lend the pan tool for one drag.
// Every tool has the same small interface:
//   {name, cursor, activate(), deactivate(), onPointerDown(event, xyImage),
//    onPointerMove(event, xyImage), onPointerUp(event, xyImage), draw(ctx, viewer)}
// and optionally onKey(event) -> true when it used the key (the shortcuts
// ask the active tool first), onDoubleClick(event, xyImage), onPointerLeave().
// Events: "toolchange" {name}.

import { isTyping } from "../lib/dom.js";

const WHEEL_ZOOM_PER_PIXEL = 0.0015;

export class ToolManager extends EventTarget {
  constructor(viewer) {
    super();
    this.viewer = viewer;
    this.tools = new Map();
    this.active = null;
    this.borrowed = null; // the pan tool during a middle or Space drag
    this.spaceHeld = false;
    this.held = new Set(); // lower-case keys held down now (R: refine on click)
    viewer.addLayer((ctx, view) => this.current?.draw(ctx, view), 30);
  }

  isHeld(key) {
    return this.held.has(key.toLowerCase());
  }

  // The active tool's key handling; true when it used the key.
  handleKey(event) {
    return Boolean(this.active?.onKey?.(event));
  }

  get current() {
    return this.borrowed ?? this.active;
  }

  register(tool) {
    this.tools.set(tool.name, tool);
  }

  use(name) {
    const tool = this.tools.get(name);
    if (!tool) throw new Error(`no tool named ${name}`);
    if (this.active === tool) return;
    this.active?.deactivate();
    this.active = tool;
    tool.activate();
    this.updateCursor();
    this.viewer.requestDraw();
    this.dispatchEvent(new CustomEvent("toolchange", { detail: { name } }));
  }

  updateCursor() {
    const tool = this.borrowed ?? (this.spaceHeld ? this.tools.get("pan") : this.active);
    this.viewer.canvas.style.cursor = tool?.cursor ?? "default";
  }

  attach(canvas) {
    const view = this.viewer;
    const xy = (event) => view.screenToImage(event.clientX, event.clientY);
    canvas.addEventListener("pointerdown", (event) => {
      canvas.focus({ preventScroll: true });
      canvas.setPointerCapture(event.pointerId);
      if (event.button === 1 || (this.spaceHeld && event.button === 0)) {
        event.preventDefault();
        this.borrowed = this.tools.get("pan");
        this.borrowed.activate();
        this.updateCursor();
      }
      this.current?.onPointerDown(event, xy(event));
    });
    canvas.addEventListener("pointermove", (event) => this.current?.onPointerMove(event, xy(event)));
    const finish = (event) => {
      this.current?.onPointerUp(event, xy(event));
      if (this.borrowed) {
        this.borrowed.deactivate();
        this.borrowed = null;
        this.updateCursor();
      }
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    canvas.addEventListener("pointerleave", () => this.current?.onPointerLeave?.());
    canvas.addEventListener("dblclick", (event) => this.current?.onDoubleClick?.(event, xy(event)));
    // The middle button would start autoscroll; the right button opens a menu.
    canvas.addEventListener("mousedown", (event) => event.button === 1 && event.preventDefault());
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const pixels = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
        view.zoomAt({ x: event.clientX, y: event.clientY }, Math.exp(-pixels * WHEEL_ZOOM_PER_PIXEL));
      },
      { passive: false },
    );
    window.addEventListener("keydown", (event) => {
      if (!isTyping(event.target)) this.held.add(event.key.toLowerCase());
      if (event.code === "Space" && !isTyping(event.target)) {
        event.preventDefault();
        if (!this.spaceHeld) {
          this.spaceHeld = true;
          this.updateCursor();
        }
      }
    });
    window.addEventListener("keyup", (event) => {
      this.held.delete(event.key.toLowerCase());
      if (event.code === "Space") {
        this.spaceHeld = false;
        this.updateCursor();
      }
    });
    window.addEventListener("blur", () => {
      this.held.clear();
      this.spaceHeld = false;
      this.updateCursor();
    });
  }
}
