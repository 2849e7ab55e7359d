// The project page's invitation links (owners only): make a link with a
// role, an optional expiry and number of uses; copy it; revoke it.

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";

const projectId = Number(document.body.dataset.projectId);
const card = document.getElementById("invitations-card");

function linkState(link) {
  if (link.problem) return link.problem;
  const uses = link.max_uses ? `${link.uses} of ${link.max_uses} uses` : `${link.uses} uses`;
  const expires = link.expires_at ? `, until ${link.expires_at.slice(0, 10)}` : "";
  return `${link.role} · ${uses}${expires}`;
}

function linkItem(link, errorNode) {
  const copy = el("button", { type: "button", class: "link", onclick: async () => {
    try {
      await navigator.clipboard.writeText(link.url);
      copy.textContent = "Copied";
    } catch {
      input.select(); // no clipboard (plain http): selected for Ctrl+C
    }
  } }, "Copy");
  const input = el("input", { type: "text", readOnly: true, value: link.url, class: "invitation-url" });
  const revoke = link.revoked
    ? null
    : el("button", { type: "button", class: "link", onclick: () => revokeLink(link, errorNode) }, "Revoke");
  return el(
    "li",
    { dataset: { code: link.code }, class: link.problem ? "muted" : "" },
    link.problem ? null : input,
    el("span", { class: "row spread" }, el("span", { class: "hint" }, linkState(link)), el("span", { class: "row" }, link.problem ? null : copy, revoke)),
  );
}

async function load(errorNode) {
  try {
    const links = await api(endpoints.projectInvitations(projectId));
    card.querySelector("#invitation-list").replaceChildren(...links.map((link) => linkItem(link, errorNode)));
  } catch (err) {
    showError(errorNode, err.message);
  }
}

async function revokeLink(link, errorNode) {
  if (!window.confirm("Revoke this link? Whoever has it can no longer join.")) return;
  showError(errorNode, "");
  try {
    await api(endpoints.projectInvitation(projectId, link.code), { method: "DELETE" });
    await load(errorNode);
  } catch (err) {
    showError(errorNode, err.message);
  }
}

function numberOrNull(input) {
  return input.value === "" ? null : Number(input.value);
}

if (card) {
  const form = card.querySelector("form");
  const errorNode = card.querySelector(".error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(errorNode, "");
    const body = {
      role: form.elements.role.value,
      expires_in_days: numberOrNull(form.elements.expires_in_days),
      max_uses: numberOrNull(form.elements.max_uses),
    };
    try {
      await api(endpoints.projectInvitations(projectId), { method: "POST", json: body });
      form.reset();
      await load(errorNode);
    } catch (err) {
      showError(errorNode, err.message);
    }
  });
  load(errorNode);
}
