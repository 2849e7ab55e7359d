// What each role may do, as far as the pages need to know it to show or hide
// a control. The server decides (backend/projects/permissions.py, the one
// table); this copy only keeps buttons away from people they would refuse.

const ALLOWED = {
  annotate: ["owner", "reviewer", "annotator"],
  upload: ["owner", "reviewer", "annotator"],
  propose: ["owner", "reviewer"],
  queue: ["owner", "reviewer", "annotator"],
  review: ["owner", "reviewer"],
  workflow: ["owner"],
};

export function may(role, action) {
  return (ALLOWED[action] ?? []).includes(role);
}

// Annotators upload only where the project's workflow lets them.
export function mayUpload(role, workflow) {
  if (!may(role, "upload")) return false;
  return role !== "annotator" || workflow?.annotators_upload !== false;
}

// A project where everyone edits the image's curated set directly.
export function isDirect(workflow) {
  return (workflow?.overlap ?? 1) === 1 && !workflow?.review;
}
