// The "Propagate" panel of a plane of a volume: the selected (saved)
// instance is carried to the neighbouring planes, up (z + 1, ...), down or
// both, by the worker (POST /api/images/{id}/propagate/). Progress and the
// end ("stopped up at z=17: the object vanished") come as "propagation"
// messages on the image's WebSocket; each plane's new instance is there
// when that plane is opened, to review and correct with the usual tools.

import { api, endpoints } from "../lib/api.js";
import { el } from "../lib/dom.js";

const DIRECTIONS = [
  ["up", "Up ↑", "To the next planes (z + 1, z + 2, …)"],
  ["down", "Down ↓", "To the previous planes (z − 1, z − 2, …)"],
  ["both", "Both", "Up, then down"],
];

export function mountPropagation({ node, image, selection, showError }) {
  if (!node || !image.stack || (image.stack.shape?.Z ?? 1) < 2) return null;
  node.hidden = false;
  const status = el("p", { class: "hint propagate-status", role: "status", "aria-live": "polite" });
  let running = null;
  const start = async (direction) => {
    const ids = selection.ids().filter((id) => Number.isInteger(id) && id > 0);
    if (ids.length !== 1) {
      status.textContent = "Select one saved instance to propagate.";
      return;
    }
    try {
      const { job } = await api(endpoints.imagePropagate(image.id), { method: "POST", json: { instance: ids[0], direction } });
      follow(job);
    } catch (err) {
      showError(err.message);
    }
  };
  const buttons = DIRECTIONS.map(([direction, text, title]) =>
    el("button", { type: "button", class: "propagate", dataset: { direction }, title, onclick: () => start(direction) }, text),
  );
  node.replaceChildren(el("h2", {}, "Propagate through the volume"), el("div", { class: "row" }, buttons), status);

  function follow(job) {
    if (running && job.id < running) return; // an older job's late message
    running = job.id;
    const busy = job.status === "pending" || job.status === "running";
    for (const button of buttons) button.disabled = busy;
    node.dataset.status = job.status;
    if (busy) {
      status.textContent = `Propagating: ${job.done_planes} of ${job.total_planes} planes, ${job.created_instances} made`;
    } else if (job.status === "failed") {
      status.textContent = `Propagation failed: ${job.error}`;
    } else {
      const stops = Object.entries(job.stopped).map(([way, why]) => `${way}: ${why}`).join("; ");
      status.textContent = `Propagated to ${job.created_instances} planes (stopped ${stops}).`;
    }
  }
  return { follow };
}
