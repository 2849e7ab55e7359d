// The editor's work bar on a person's set (an assignment): its status and
// annotator, its comments (pinned ones drawn on the image, comment_pins.js),
// and what the caller can do with it. The set's annotator: "Submit and
// next", "Skip" (with a reason). Owners and reviewers on someone else's
// submitted set: "Accept" and "Return" (a comment, optionally pinned to a
// point). Each then takes the next set from the queue (queue.js), except a
// submitted gold set in a course: its score and reference come first.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";
import { CommentPins } from "./comment_pins.js";
import { goldFeedback } from "./gold_feedback.js";
import { goToNext } from "./queue.js";
import { may } from "./roles.js";

const OPEN = ["in_progress", "returned", "expired"];
const SAVE_WAIT_MS = 20_000;

function statusText(assignment, workflow) {
  const texts = {
    in_progress: "in progress",
    returned: "returned: see the comments",
    submitted: workflow?.review ? "submitted, waits for review" : "submitted",
    accepted: "accepted",
    skipped: `skipped (${assignment.skip_reason || "no reason"})`,
    expired: "expired: untouched too long, back in the queue",
  };
  return texts[assignment.status] ?? assignment.status;
}

// Resolves once every change to the set is on the server; rejects on a
// conflict or when saving takes too long (nothing is submitted half saved).
export function whenSaved(store) {
  return new Promise((resolve, reject) => {
    let timer = null;
    const done = (error) => {
      clearTimeout(timer);
      store.removeEventListener("savestate", check);
      if (error) reject(error);
      else resolve();
    };
    function check() {
      if (store.conflicts.size) done(new Error("Settle the conflicts first (Keep mine or Use server's)."));
      else if (!store.pending) done(null);
    }
    timer = setTimeout(() => done(new Error("Some changes are not saved yet; try again once they are.")), SAVE_WAIT_MS);
    store.addEventListener("savestate", check);
    check();
  });
}

export class WorkBar {
  // assignment: the set's JSON; activity: the ActivityReporter (its annotator only).
  constructor({ node, assignment, projectId, username, role, workflow, viewer, tools, store, activity }) {
    Object.assign(this, { node, assignment, projectId, username, role, workflow, viewer, store, activity });
    this.pins = new CommentPins({ viewer, tools });
    this.pins.addEventListener("pick", (event) => this.picked(event.detail));
    this.errorNode = el("p", { class: "error", role: "alert", hidden: true });
    this.render();
  }

  get mine() {
    return this.assignment.annotator === this.username;
  }

  render() {
    const a = this.assignment;
    this.node.dataset.status = a.status;
    this.node.dataset.assignmentId = String(a.id);
    this.pins.setComments(a.comments);
    this.node.replaceChildren(
      el("h2", {}, this.mine ? "Your set" : `${a.annotator}'s set`),
      el(
        "p",
        { class: "work-status" },
        el("span", { id: "set-status", dataset: { status: a.status } }, statusText(a, this.workflow)),
        a.reviewer ? el("span", { class: "muted" }, ` · reviewer ${a.reviewer}`) : null,
      ),
      this.commentList(),
      this.feedback(),
      el("div", { class: "row wrap work-actions" }, this.actions()),
      this.skipForm(),
      this.returnForm(),
      this.errorNode,
    );
  }

  // A gold image's score and reference outlines, once (a course with feedback).
  feedback() {
    if (!this.assignment.feedback || !this.mine) return null;
    this.feedbackNode ??= goldFeedback({ assignment: this.assignment, viewer: this.viewer });
    return this.feedbackNode;
  }

  commentList() {
    const comments = this.assignment.comments;
    if (!comments.length) return null;
    const items = comments.map((comment, index) => {
      const pinned = comment.x !== null && comment.y !== null;
      return el(
        "li",
        { dataset: { commentId: comment.id, pinned: String(pinned) } },
        el("span", { class: "comment-head" }, pinned ? el("span", { class: "pin-number" }, String(index + 1)) : null, comment.author ?? "someone"),
        el("span", { class: "comment-text" }, comment.text),
        pinned
          ? el("button", { type: "button", class: "link", onclick: () => this.pins.centreOn(comment.x, comment.y) }, "Show on the image")
          : null,
      );
    });
    return el("ol", { class: "comment-list", id: "comment-list" }, items);
  }

  actions() {
    const a = this.assignment;
    const button = (id, text, onclick, primary = false) =>
      el("button", { type: "button", id, class: primary ? "primary" : "", onclick }, text);
    if (this.mine && OPEN.includes(a.status)) {
      return [
        button("submit-next", "Submit and next", () => this.submit(), true),
        button("skip-set", "Skip", () => this.toggle("skip")),
      ];
    }
    if (!this.mine && may(this.role, "review") && a.status === "submitted") {
      return [
        button("accept-set", "Accept", () => this.accept(), true),
        button("return-set", "Return", () => this.toggle("return")),
      ];
    }
    if (this.mine) return [button("next-set", "Next image", () => this.run(() => goToNext(this.projectId, "queue")))];
    if (may(this.role, "review")) return [button("next-review", "Review next", () => this.run(() => goToNext(this.projectId, "review")))];
    return [];
  }

  skipForm() {
    this.skip = el(
      "form",
      { id: "skip-form", class: "stack work-form", hidden: true, onsubmit: (event) => this.submitSkip(event) },
      el("label", {}, "Why do you skip this image?", el("input", { type: "text", name: "reason", required: true, maxlength: 200, placeholder: "for example: out of focus" })),
      el("div", { class: "row" }, el("button", { type: "submit" }, "Skip this image"), el("button", { type: "button", onclick: () => this.toggle(null) }, "Cancel")),
    );
    return this.skip;
  }

  returnForm() {
    this.pinNote = el("span", { class: "hint", id: "pin-note" }, "Not pinned to a point.");
    this.returning = el(
      "form",
      { id: "return-form", class: "stack work-form", hidden: true, onsubmit: (event) => this.submitReturn(event) },
      el("label", {}, "What should be fixed?", el("textarea", { name: "comment", id: "return-comment", required: true, rows: 3, maxlength: 2000 })),
      el("div", { class: "row wrap" }, el("button", { type: "button", id: "pin-point", onclick: () => this.startPin() }, "Pin to a point"), this.pinNote),
      el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Return to the annotator"), el("button", { type: "button", onclick: () => this.toggle(null) }, "Cancel")),
    );
    return this.returning;
  }

  toggle(which) {
    this.skip.hidden = which !== "skip";
    this.returning.hidden = which !== "return";
    if (which !== "return") this.pins.clearPicked();
    const form = which === "skip" ? this.skip : which === "return" ? this.returning : null;
    form?.querySelector("input, textarea")?.focus();
  }

  startPin() {
    this.pinNote.textContent = "Click the point on the image.";
    this.pins.startPicking();
  }

  picked({ x, y }) {
    this.pinNote.textContent = `Pinned at (${Math.round(x)}, ${Math.round(y)}).`;
  }

  // Run a step; its failure is shown in the bar and the buttons come back.
  async run(step) {
    showError(this.errorNode, "");
    const buttons = [...this.node.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    try {
      await step();
    } catch (err) {
      showError(this.errorNode, err.message);
      for (const b of buttons) b.disabled = false;
    }
  }

  async post(action, json = {}) {
    return api(endpoints.assignmentAction(this.assignment.id, action), { method: "POST", json });
  }

  submit() {
    return this.run(async () => {
      await whenSaved(this.store);
      await this.activity?.report();
      this.activity?.stop();
      this.assignment = await this.post("submit");
      if (this.assignment.feedback) {
        // A reference image: stay to see the score and the outlines; "Next image" goes on.
        this.store.setReadOnly("You have seen the reference for this image: your set is final.");
        this.render();
        return;
      }
      await goToNext(this.projectId, "queue");
    });
  }

  submitSkip(event) {
    event.preventDefault();
    const reason = this.skip.elements.reason.value;
    return this.run(async () => {
      await whenSaved(this.store);
      await this.activity?.report();
      this.activity?.stop();
      this.assignment = await this.post("skip", { reason });
      await goToNext(this.projectId, "queue");
    });
  }

  accept() {
    return this.run(async () => {
      await whenSaved(this.store);
      this.assignment = await this.post("accept");
      await goToNext(this.projectId, "review");
    });
  }

  submitReturn(event) {
    event.preventDefault();
    const comment = this.returning.elements.comment.value;
    const point = this.pins.picked ?? { x: null, y: null };
    return this.run(async () => {
      await whenSaved(this.store);
      this.assignment = await this.post("return", { comment, x: point.x, y: point.y });
      await goToNext(this.projectId, "review");
    });
  }
}
