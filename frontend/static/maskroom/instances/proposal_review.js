// Reviewing automatic proposals in the editor: a "Propose" button asks the
// worker for proposals on this image and shows the job's progress (and so
// does a job someone else started, told over the image's socket: follow); with a
// proposal selected, A accepts it, R rejects it (an undoable delete) and N
// selects and centres the next one. Proposed instances are instances with
// state "proposed" (see docs/api.md, "Automatic proposals").

import { api, endpoints } from "../lib/api.js";
import { el } from "../lib/dom.js";

const JOB_POLL_MS = 1000;

const isProposal = (instance) => instance?.state === "proposed";

// Returns {handlers, controls}: shortcut handlers and the toolbar's nodes.
export function installProposalReview({ imageId, store, instances, edits, selection, labelId, showError }) {
  const status = el("span", { id: "propose-status", class: "hint", "aria-live": "polite" });
  const progress = el("progress", { id: "propose-progress", hidden: true, max: 1, value: 0 });

  const proposals = () => store.all().filter(isProposal);
  const selectedProposals = () => selection.ids().map((id) => store.get(id)).filter(isProposal);

  function showCount() {
    const count = proposals().length;
    status.textContent = count ? `${count} proposal${count === 1 ? "" : "s"} to review (N, A, R)` : "";
    document.body.dataset.proposals = String(count);
  }

  async function accept() {
    const chosen = selectedProposals();
    if (!chosen.length) return false;
    showError("");
    for (const proposal of chosen) {
      try {
        const accepted = await api(endpoints.instanceAccept(proposal.id), { method: "POST" });
        store.show(proposal.id, accepted);
      } catch (err) {
        showError(`Could not accept the proposal: ${err.message}`);
        if (err.status === 404) await store.load(); // a newer run replaced it
      }
    }
    next();
    return true;
  }

  function reject() {
    const chosen = selectedProposals();
    if (!chosen.length) return false;
    edits.remove(chosen.map((p) => p.id));
    next();
    return true;
  }

  // Select the next proposal (after the selected one, by id) and centre it.
  function next() {
    const list = proposals().sort((a, b) => a.id - b.id);
    if (!list.length) {
      selection.set([]);
      return true;
    }
    const current = selection.ids()[0];
    const found = list.find((p) => typeof current !== "number" || p.id > current) ?? list[0];
    selection.set([found.id]);
    instances.show?.(found.id);
    return true;
  }

  let mine = null; // the id of the job this editor started and polls
  const running = (job) => job.status === "pending" || job.status === "running";

  function showJob(job, by = "") {
    progress.hidden = false;
    progress.max = Math.max(job.total_images, 1);
    progress.value = job.done_images;
    const who = by ? ` (${by})` : "";
    status.textContent = job.status === "pending" ? `Proposals queued${who}…` : `Proposing${who}…`;
  }

  async function propose() {
    button.disabled = true;
    showError("");
    try {
      const body = labelId() ? { label: labelId() } : {};
      let { job } = await api(endpoints.imageProposals(imageId), { method: "POST", json: body });
      mine = job.id;
      while (running(job)) {
        showJob(job);
        await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
        job = await api(endpoints.proposalJob(job.id));
      }
      if (job.status === "failed") showError(`Proposals failed: ${job.error}`);
      await store.load();
    } catch (err) {
      showError(`Could not propose: ${err.message}`);
    } finally {
      mine = null;
      progress.hidden = true;
      button.disabled = false;
      showCount();
    }
  }

  // A job on this image that someone else started (or this editor in
  // another tab): its progress, and the set read again when it is done.
  async function follow(job) {
    if (job.id === mine) return; // propose() follows its own
    if (running(job)) {
      button.disabled = true;
      showJob(job, job.created_by);
      return;
    }
    progress.hidden = true;
    button.disabled = false;
    if (job.status === "failed") showError(`Proposals by ${job.created_by} failed: ${job.error}`);
    try {
      await store.load(); // the worker's own "instances" event may not reach us (one machine)
    } catch (err) {
      showError(`Could not read the new proposals: ${err.message}`);
    }
    showCount();
  }

  const button = el(
    "button",
    { type: "button", id: "propose", title: "Ask the worker to propose instances on this image", onclick: propose },
    "Propose",
  );
  store.addEventListener("load", showCount);
  store.addEventListener("change", showCount);
  showCount();

  return {
    follow,
    hasSelectedProposal: () => selectedProposals().length > 0,
    handlers: { "proposal:accept": accept, "proposal:reject": reject, "proposal:next": next },
    controls: [button, progress, status],
  };
}
