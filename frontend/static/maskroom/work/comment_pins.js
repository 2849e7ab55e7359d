// A set's comments pinned to points of the image: numbered markers drawn over
// it (x, y in image pixels), and the one-shot "pin" tool with which a reviewer
// picks the point of a new comment (the next click on the image).

const RADIUS_PX = 9; // screen pixels
const PIN_COLOR = "#f97316";
const NEW_PIN_COLOR = "#facc15";

export class CommentPins extends EventTarget {
  // Events: "pick" {x, y} when the pin tool took a point.
  constructor({ viewer, tools }) {
    super();
    this.viewer = viewer;
    this.tools = tools;
    this.comments = []; // [{x, y, number}] with a point
    this.picked = null; // {x, y}: the point of the comment being written
    this.previousTool = null;
    viewer.addLayer((ctx, view) => this.draw(ctx, view), 40);
    tools.register(this.pinTool());
  }

  setComments(comments) {
    this.comments = comments
      .map((comment, index) => ({ ...comment, number: index + 1 }))
      .filter((comment) => comment.x !== null && comment.y !== null);
    this.viewer.requestDraw();
  }

  // The next click on the image sets the new comment's point.
  startPicking() {
    this.previousTool = this.tools.active?.name === "pin" ? this.previousTool : this.tools.active?.name;
    this.tools.use("pin");
  }

  stopPicking() {
    if (this.tools.active?.name === "pin") this.tools.use(this.previousTool ?? "prompt");
  }

  clearPicked() {
    this.picked = null;
    this.stopPicking();
    this.viewer.requestDraw();
  }

  // Centre the view on an image point.
  centreOn(x, y) {
    const rect = this.viewer.canvas.getBoundingClientRect();
    const at = this.viewer.imageToScreen(x, y);
    this.viewer.panBy(rect.left + rect.width / 2 - at.x, rect.top + rect.height / 2 - at.y);
  }

  pinTool() {
    return {
      name: "pin",
      cursor: "crosshair",
      activate() {},
      deactivate() {},
      onPointerDown: (event, xyImage) => {
        if (event.button !== 0 || !this.viewer.containsImagePoint(xyImage)) return;
        this.picked = { x: Math.round(xyImage.x * 10) / 10, y: Math.round(xyImage.y * 10) / 10 };
        this.stopPicking();
        this.viewer.requestDraw();
        this.dispatchEvent(new CustomEvent("pick", { detail: this.picked }));
      },
      onPointerMove() {},
      onPointerUp() {},
      draw() {},
    };
  }

  draw(ctx, view) {
    const radius = RADIUS_PX / view.scale;
    ctx.lineWidth = 2 / view.scale;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.font = `bold ${11 / view.scale}px sans-serif`;
    const marker = (x, y, color, text) => {
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, 2 * Math.PI);
      ctx.fillStyle = color;
      ctx.fill();
      ctx.strokeStyle = "#111318";
      ctx.stroke();
      ctx.fillStyle = "#111318";
      ctx.fillText(text, x, y);
    };
    for (const comment of this.comments) marker(comment.x, comment.y, PIN_COLOR, String(comment.number));
    if (this.picked) marker(this.picked.x, this.picked.y, NEW_PIN_COLOR, "+");
  }
}
