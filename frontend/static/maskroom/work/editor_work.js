// The work queue in the editor: the read-only notice, the work bar of a
// person's set and the activity it reports, and the controls a role may not
// use hidden. pages/editor.js calls these; the set itself is the store's.

import { el } from "../lib/dom.js";
import { ActivityReporter } from "./activity.js";
import { readOnlyReason } from "./editable.js";
import { may } from "./roles.js";
import { WorkBar } from "./work_bar.js";

const OPEN = ["in_progress", "returned", "expired"];

// Show why the set cannot be changed whenever the store becomes read-only.
export function watchReadOnly(store, node) {
  const show = (reason) => {
    node.hidden = !reason;
    node.replaceChildren(...(reason ? [el("strong", {}, "Read only. "), reason] : []));
    document.body.dataset.readOnly = reason ? "true" : "false";
  };
  store.addEventListener("readonly", (event) => show(event.detail.reason));
  show(store.readOnly);
}

// assignment: the set's JSON, or null (the curated set); project: its JSON
// (workflow, labels). Returns the WorkBar, or null without a set.
export function mountWork({ assignment, project, username, role, viewer, tools, store, session, node }) {
  const workflow = project.workflow ?? {};
  // A shared assignment (a direct project's) edits the curated set: its rules apply.
  const edited = assignment?.shared ? null : assignment;
  const reason = readOnlyReason({ role, username, workflow, assignment: edited });
  if (reason) store.setReadOnly(reason);
  // Proposals land in the curated set: proposing belongs to its editors, not to a person's set.
  const propose = document.getElementById("propose");
  if (propose) propose.hidden = !may(role, "propose") || assignment !== null;
  if (!assignment) return null;
  const reports = assignment.annotator === username && OPEN.includes(assignment.status);
  const activity = reports ? new ActivityReporter({ assignmentId: assignment.id, session }) : null;
  node.hidden = false;
  return new WorkBar({ node, assignment, projectId: project.id, username, role, workflow, viewer, tools, store, activity });
}
