// "Every object here is labelled": an image whose curated set is complete,
// so that training counts its unlabelled pixels as background (otherwise
// curated labels are taken as partial). Shown to those who may edit the
// image's curated set (the CURATE row of backend/projects/permissions.py):
// owners, reviewers, and annotators in a direct project. The server decides.

import { api, endpoints } from "../lib/api.js";
import { isDirect, may } from "../work/roles.js";

export function mountCompleteToggle({ node, image, role, workflow, showError }) {
  const curates = may(role, "review") || (may(role, "annotate") && isDirect(workflow));
  if (!curates) return;
  const box = node.querySelector("input");
  box.checked = Boolean(image.complete);
  node.hidden = false;
  box.addEventListener("change", async () => {
    box.disabled = true;
    try {
      const saved = await api(endpoints.image(image.id), { method: "PATCH", json: { complete: box.checked } });
      box.checked = saved.complete;
    } catch (err) {
      box.checked = !box.checked;
      showError(err.message);
    } finally {
      box.disabled = false;
    }
  });
}
