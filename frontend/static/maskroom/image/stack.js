// Sliders for the t and z planes of a stack (a multi-page TIFF): every plane
// is an image of its own, so moving a slider opens that plane's editor page.
//
// Why a full page load rather than swapping the image in place: the editor's
// state (socket, instance store with its pending saves, undo history, tools)
// belongs to one image, and a fresh page starts all of it clean for the new
// plane; pending saves survive a reload by design. What the annotator set up
// is kept: the zoom and pan go through sessionStorage (one-shot, for the
// target plane only), the display settings are per project anyway, and a
// slider moved with the keyboard gets the focus back, so arrow keys keep
// stepping (after a mouse drag the focus stays free for the editor's keys).

import { el } from "../lib/dom.js";

const VIEW_KEY = "maskroom:stack-view";
const AXES = [
  { axis: "t", size: "T", title: "Time point" },
  { axis: "z", size: "Z", title: "Z slice" },
];

// The image id of plane (t, z), or undefined.
export function planeImageId(stack, t, z) {
  const found = stack.planes.find(([pt, pz]) => pt === t && pz === z);
  return found ? found[2] : undefined;
}

// Render the sliders for `image` (GET /api/images/{id}/) into `node`, and
// restore the view saved by the plane we came from. Does nothing for an
// image that is not a plane of a stack.
export function mountStackControls({ image, viewer, node, navigate = (url) => location.replace(url) }) {
  const stack = image.stack;
  node.replaceChildren();
  node.hidden = !stack;
  if (!stack) return;
  const at = { t: stack.t, z: stack.z };
  node.dataset.stackId = String(stack.id);
  node.append(el("span", { class: "stack-name", title: stack.name }, `${stack.plane_count} planes`));
  for (const { axis, size, title } of AXES) {
    const count = stack.shape[size] ?? 1;
    const output = el("output", { id: `stack-${axis}-value`, for: `stack-${axis}` });
    const input = el("input", {
      type: "range",
      id: `stack-${axis}`,
      min: 0,
      max: Math.max(0, count - 1),
      step: 1,
      value: at[axis],
      "aria-label": title,
    });
    const show = () => {
      output.textContent = `${input.value} / ${count - 1}`;
    };
    let byKey = false; // a slider moved by the keyboard keeps the focus on the next plane
    input.addEventListener("keydown", () => (byKey = true));
    input.addEventListener("pointerdown", () => (byKey = false));
    input.addEventListener("input", show);
    input.addEventListener("change", () => {
      const target = { ...at, [axis]: Number(input.value) };
      const id = planeImageId(stack, target.t, target.z);
      if (id === undefined || id === image.id) return;
      saveView(viewer, { target: id, focus: byKey ? axis : null });
      navigate(`/images/${id}/`);
    });
    show();
    node.append(el("label", { class: "stack-axis", dataset: { axis }, hidden: count <= 1, title }, axis, input, output));
  }
  restoreView(viewer, image);
}

function saveView(viewer, { target, focus }) {
  const view = {
    target,
    focus,
    width: viewer.width,
    height: viewer.height,
    scale: viewer.scale,
    offsetX: viewer.offsetX,
    offsetY: viewer.offsetY,
    moved: viewer.userMoved,
  };
  try {
    sessionStorage.setItem(VIEW_KEY, JSON.stringify(view));
  } catch {
    // Storage refused (private mode, quota): the new plane opens fitted.
  }
}

function restoreView(viewer, image) {
  let view = null;
  try {
    view = JSON.parse(sessionStorage.getItem(VIEW_KEY) || "null");
    sessionStorage.removeItem(VIEW_KEY);
  } catch {
    return;
  }
  if (!view || view.target !== image.id) return;
  if (view.moved && view.width === image.width && view.height === image.height) {
    viewer.scale = view.scale;
    viewer.offsetX = view.offsetX;
    viewer.offsetY = view.offsetY;
    viewer.userMoved = true;
    viewer.changed();
  }
  if (view.focus) document.getElementById(`stack-${view.focus}`)?.focus({ preventScroll: true });
}
