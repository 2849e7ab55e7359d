// Taking work from the queue: the caller's next set to annotate ("queue") or
// the next submitted set or disputed image to review ("review"), opened in
// the editor.

import { api, endpoints } from "../lib/api.js";

const NEXT = { queue: endpoints.queueNext, review: endpoints.reviewNext };

// The next assignment of `kind`, or null when nothing is left.
export async function takeNext(projectId, kind) {
  return api(NEXT[kind](projectId), { method: "POST" });
}

// Go to the next set's editor; false (staying here) when nothing is left.
export async function openNext(projectId, kind) {
  const next = await takeNext(projectId, kind);
  if (!next) return false;
  // A disputed image opens on its curated set, with people's sets over it.
  const assignment = next.kind === "dispute" ? null : next.id;
  window.location.assign(endpoints.editorPage(next.image, assignment));
  return true;
}

// From the editor: the next set, or back to the project page saying nothing is left.
export async function goToNext(projectId, kind) {
  if (!(await openNext(projectId, kind))) {
    window.location.assign(`${endpoints.projectPage(projectId)}?done=${kind}`);
  }
}
