// The project page's members card: who is in the project, with which role,
// added by whom and when last active. An owner picks roles (PATCH) and
// removes members; anyone can leave. The list comes in pages ("Show more").

import { api, endpoints } from "../lib/api.js";
import { el, showError } from "../lib/dom.js";

const ROLES = ["owner", "reviewer", "annotator", "viewer"];
const PAGE = 50;
const projectId = Number(document.body.dataset.projectId);
const isOwner = document.body.dataset.isOwner === "true";
const card = document.getElementById("members-card");
const listNode = document.getElementById("member-list");
const moreButton = document.getElementById("members-more");
const leaveButton = document.getElementById("leave-project");
const errorNode = card.querySelector(".error");
const me = document.querySelector(".whoami span")?.textContent ?? "";
let nextPage = null;

// "today", "3 days ago", or the date; "never" for null.
function activeText(iso, now = new Date()) {
  if (!iso) return "never active";
  const when = new Date(iso);
  const days = Math.floor((now - when) / 86_400_000);
  if (days <= 0) return "active today";
  if (days === 1) return "active yesterday";
  if (days < 30) return `active ${days} days ago`;
  return `active ${when.toISOString().slice(0, 10)}`;
}

function rolePicker(member) {
  const select = el(
    "select",
    { class: "role-picker", "aria-label": `Role of ${member.username}`, onchange: () => setRole(member, select) },
    ROLES.map((role) => el("option", { value: role, selected: role === member.role }, role)),
  );
  return select;
}

function memberItem(member) {
  const added = member.added_by ? ` · added by ${member.added_by}` : "";
  const sets = member.sets_done ? ` · ${member.sets_done} ${member.sets_done === 1 ? "set" : "sets"} done` : "";
  const remove =
    isOwner && member.username !== me
      ? el("button", { type: "button", class: "link", onclick: () => removeMember(member.username) }, "Remove")
      : null;
  return el(
    "li",
    { dataset: { username: member.username, role: member.role } },
    el(
      "span",
      { class: "member-who" },
      member.username,
      isOwner ? null : el("span", { class: "muted" }, ` ${member.role}`),
      el("span", { class: "muted member-meta" }, ` ${activeText(member.last_active)}${sets}${added}`),
    ),
    el("span", { class: "row" }, isOwner ? rolePicker(member) : null, remove),
  );
}

async function load(url = `${endpoints.projectMembers(projectId)}?limit=${PAGE}`, append = false) {
  try {
    const page = await api(url);
    const items = page.results.map(memberItem);
    if (append) listNode.append(...items);
    else listNode.replaceChildren(...items);
    nextPage = page.next;
    moreButton.hidden = !nextPage;
    moreButton.textContent = `Show more (${page.count - listNode.children.length} more)`;
  } catch (err) {
    showError(errorNode, err.message);
  }
}

async function setRole(member, select) {
  showError(errorNode, "");
  try {
    const changed = await api(endpoints.projectMember(projectId, member.username), {
      method: "PATCH",
      json: { role: select.value },
    });
    member.role = changed.role;
    select.closest("li").dataset.role = changed.role;
  } catch (err) {
    select.value = member.role; // refused (the last owner, ...): as it was
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

moreButton.addEventListener("click", () => nextPage && load(nextPage, true));
// The bulk form (members_bulk.js) and invitation joins change the list.
document.addEventListener("members:changed", () => load());

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
