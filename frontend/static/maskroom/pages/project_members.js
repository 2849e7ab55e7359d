// The project page's members card: who is in the project, with which role
// and added by whom; an owner can remove a member; anyone can leave.

import { api, asList, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";

const projectId = Number(document.body.dataset.projectId);
const isOwner = document.body.dataset.isOwner === "true";
const card = document.getElementById("members-card");
const listNode = document.getElementById("member-list");
const leaveButton = document.getElementById("leave-project");
const errorNode = card.querySelector(".error");
const me = document.querySelector(".whoami span")?.textContent ?? "";

function memberItem(member) {
  const added = member.added_by ? ` · added by ${member.added_by}` : "";
  const remove =
    isOwner && member.username !== me
      ? el("button", { type: "button", class: "link", onclick: () => removeMember(member.username) }, "Remove")
      : null;
  return el(
    "li",
    { dataset: { username: member.username } },
    el("span", {}, member.username, el("span", { class: "muted" }, ` ${member.role}${added}`)),
    remove,
  );
}

async function load() {
  try {
    const members = asList(await api(endpoints.projectMembers(projectId)));
    listNode.replaceChildren(...members.map(memberItem));
  } catch (err) {
    showError(errorNode, err.message);
  }
}

async function removeMember(username) {
  if (!window.confirm(`Remove ${username} from this project? What they annotated stays.`)) return;
  showError(errorNode, "");
  try {
    await api(endpoints.projectMember(projectId, username), { method: "DELETE" });
    await load();
  } catch (err) {
    showError(errorNode, err.message);
  }
}

leaveButton.addEventListener("click", async () => {
  if (!window.confirm("Leave this project? You will no longer see it.")) return;
  showError(errorNode, "");
  try {
    await api(endpoints.projectLeave(projectId), { method: "POST" });
    window.location.assign("/");
  } catch (err) {
    showError(errorNode, err.message);
  }
});

load();
