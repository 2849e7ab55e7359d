// Automatic proposals for every image of a project: the project page's
// "Propose" button, the job's progress bar, and a job still running from
// before a reload. One image's proposals are proposal_review.js's.

import { api, asList, endpoints } from "../lib/api.js";
import { showError } from "../lib/dom.js";

const JOB_POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

function showJob(job) {
  const progress = $("propose-progress");
  const total = Math.max(job.total_images, 1);
  progress.hidden = !["pending", "running"].includes(job.status);
  progress.max = total;
  progress.value = job.done_images;
  const counts = `${job.done_images} of ${job.total_images} images, ${job.created_instances} proposals`;
  const text = {
    pending: `Queued… ${counts}`,
    running: `Proposing… ${counts}`,
    done: `Done: ${counts}.`,
    failed: `Failed: ${job.error || "see the worker's log"} (${counts}).`,
  };
  $("propose-status").textContent = text[job.status] ?? job.status;
  $("proposals-card").dataset.jobStatus = job.status;
}

async function followJob(jobId) {
  const button = $("propose-all");
  button.disabled = true;
  for (;;) {
    const job = await api(endpoints.proposalJob(jobId));
    showJob(job);
    if (job.status === "done" || job.status === "failed") break;
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
  }
  button.disabled = false;
}

export async function setUpProjectProposals(projectId) {
  const errorNode = $("proposals-card").querySelector(".error");
  $("propose-all").addEventListener("click", async () => {
    showError(errorNode, "");
    try {
      const { job } = await api(endpoints.projectProposals(projectId), { method: "POST", json: {} });
      await followJob(job.id);
    } catch (err) {
      showError(errorNode, err.message);
      $("propose-all").disabled = false;
    }
  });
  // A job still running from before a reload keeps its progress bar.
  const jobs = asList(await api(endpoints.projectProposals(projectId)));
  const running = jobs.find((job) => job.image === null && ["pending", "running"].includes(job.status));
  if (running) followJob(running.id);
}
