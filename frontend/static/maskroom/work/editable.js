// Whether the editor's set can be changed by this user, and if not, why (a
// sentence for the read-only notice). It mirrors the server's rules
// (backend/annotations/services/sets.py, set_require_edit; the CURATE row of
// backend/projects/permissions.py), so that a closed set says so at once
// instead of refusing each edit; the server still decides, and a refusal it
// sends makes the store read-only too (instances/store.js).

import { isDirect, may } from "./roles.js";

const OPEN = ["in_progress", "returned", "expired"];

// assignment: the set's JSON (null: the image's curated set).
export function readOnlyReason({ role, username, workflow, assignment }) {
  if (!may(role, "annotate")) return "Viewers can look at this image but not change it.";
  if (!assignment) {
    if (role === "annotator" && !isDirect(workflow)) {
      return "In this project annotators work in their own sets: take one with Start annotating on the project page.";
    }
    return "";
  }
  if (assignment.annotator !== username) {
    if (may(role, "review")) return "";
    return `This is ${assignment.annotator}'s set: only they, owners and reviewers change it.`;
  }
  if (OPEN.includes(assignment.status)) return "";
  if (assignment.status === "submitted" && assignment.feedback) {
    return "You have seen the reference for this image: your set is final.";
  }
  if (assignment.status === "submitted") {
    if (!workflow?.review) return ""; // without review a submitted set stays its annotator's to correct
    return "You submitted this set: it waits for review and can no longer be changed.";
  }
  return `This set is ${assignment.status.replace("_", " ")}: it can no longer be changed.`;
}
