// Pan tool: drag to move the image. The manager also lends it to the
// middle button and to Space+drag while another tool is active.

export function createPanTool({ viewer }) {
  let last = null;
  return {
    name: "pan",
    cursor: "grab",
    activate() {},
    deactivate() {
      last = null;
    },
    onPointerDown(event) {
      last = { x: event.clientX, y: event.clientY };
    },
    onPointerMove(event) {
      if (!last) return;
      viewer.panBy(event.clientX - last.x, event.clientY - last.y);
      last = { x: event.clientX, y: event.clientY };
    },
    onPointerUp() {
      last = null;
    },
    draw() {},
  };
}
