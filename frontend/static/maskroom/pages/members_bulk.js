// The project page's "Add many people" card (owners only): paste a CSV or
// choose a file; the new accounts' passwords are shown once, here, and
// offered as a CSV download (a Blob: they are never sent again).

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";

const projectId = Number(document.body.dataset.projectId);
const card = document.getElementById("bulk-card");
let downloadUrl = null;

function csvCell(value) {
  return /[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function passwordsCsv(created) {
  const rows = [["username", "password"], ...created.map((c) => [c.username, c.password])];
  return rows.map((row) => row.map(csvCell).join(",")).join("\n") + "\n";
}

function showResult(result) {
  const box = card.querySelector("#bulk-result");
  const made = result.created.length;
  const added = result.existing.length;
  card.querySelector("#bulk-summary").textContent =
    `${made} account${made === 1 ? "" : "s"} created, ${added} existing user${added === 1 ? "" : "s"} added. ` +
    (made ? "Save the passwords now: they are not shown again." : "");
  card.querySelector("#bulk-passwords tbody").replaceChildren(
    ...result.created.map((c) => el("tr", {}, el("td", {}, c.username), el("td", {}, el("code", {}, c.password)))),
  );
  const link = card.querySelector("#bulk-download");
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(new Blob([passwordsCsv(result.created)], { type: "text/csv" }));
  link.href = downloadUrl;
  link.hidden = made === 0;
  card.querySelector("#bulk-passwords").hidden = made === 0;
  box.hidden = false;
}

if (card) {
  const form = card.querySelector("form");
  const errorNode = card.querySelector(".error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(errorNode, "");
    const file = form.elements.file.files[0];
    const text = file ? await file.text() : form.elements.csv.value;
    if (!text.trim()) {
      showError(errorNode, "Paste a list or choose a CSV file.");
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      showResult(await api(endpoints.projectMembersBulk(projectId), { method: "POST", csv: text }));
      form.reset();
      document.dispatchEvent(new Event("members:changed"));
    } catch (err) {
      showError(errorNode, err.message);
    } finally {
      button.disabled = false;
    }
  });
}
