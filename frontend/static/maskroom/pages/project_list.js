// The project list page: creating a project through the API.

import { api, endpoints } from "../lib/api.js";
import { showError } from "../lib/dom.js";

const form = document.getElementById("project-create");
const errorNode = form.querySelector(".error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const labels = String(data.get("labels") || "")
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  showError(errorNode, "");
  try {
    const project = await api(endpoints.projects(), {
      method: "POST",
      json: { name: String(data.get("name") || "").trim(), labels },
    });
    window.location.assign(`/projects/${project.id}/`);
  } catch (err) {
    showError(errorNode, err.message);
    button.disabled = false;
  }
});
