// A course's feedback on a gold image: once its annotator submitted their
// set, the score against the reference and the reference's outlines (white)
// drawn over their own set, which can be hidden.

import { api, endpoints } from "../lib/api.js";
import { el } from "../lib/dom.js";
import { SetOutlines } from "./set_outlines.js";

const REFERENCE_COLOR = "#ffffff";

// A node showing the score; the outlines are loaded and drawn in the background.
export function goldFeedback({ assignment, viewer }) {
  const { f1, pq } = assignment.feedback;
  const note = el("span", { class: "hint", id: "reference-note" }, "Loading the reference outlines…");
  const node = el(
    "div",
    { class: "gold-feedback", id: "gold-feedback" },
    el("p", { class: "work-status" }, "This was a reference image. Your score: ", el("strong", { id: "gold-score" }, `F1 ${f1.toFixed(2)} · PQ ${pq.toFixed(2)}`)),
    note,
  );
  const outlines = new SetOutlines(viewer);
  api(endpoints.assignmentReference(assignment.id))
    .then(({ instances }) => {
      const n = outlines.addGroup("reference", REFERENCE_COLOR, instances);
      const toggle = el("input", { type: "checkbox", id: "show-reference", checked: true, onchange: (event) => outlines.setVisible("reference", event.target.checked) });
      note.replaceChildren(el("label", {}, toggle, ` Show the reference (${n} outlined in white) over your set`));
      node.dataset.loaded = "true";
    })
    .catch((err) => {
      note.textContent = `Could not load the reference: ${err.message}`;
    });
  return node;
}
