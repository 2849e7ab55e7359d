// The active segmentation engine, from /api/health/, and how to install SAM.

import { endpoints } from "../lib/api.js";

// /api/health/ answers 503 with the same body when something is down.
async function health() {
  const response = await fetch(endpoints.health(), { headers: { Accept: "application/json" } });
  return response.json();
}

export async function showEngine(nameNode, hintNode) {
  let report;
  try {
    report = await health();
  } catch (err) {
    nameNode.textContent = `Engine unknown: ${err.message}`;
    return null;
  }
  const engine = report.engine || {};
  const isSam = Boolean(engine.arch) && engine.arch !== "classical";
  nameNode.classList.remove("muted");
  nameNode.dataset.engine = engine.name || "";
  nameNode.dataset.arch = engine.arch || "";
  nameNode.textContent = engine.description || engine.name || "unknown engine";
  if (isSam || !report.install_hint) {
    hintNode.hidden = true;
  } else {
    hintNode.replaceChildren(withCode(report.install_hint));
    hintNode.hidden = false;
  }
  const down = Object.entries(report.checks || {})
    .filter(([, ok]) => ok === false || (ok && typeof ok === "object" && ok.ok === false))
    .map(([name]) => name);
  if (down.length) nameNode.textContent += ` (not available: ${down.join(", ")})`;
  return report;
}

// A paragraph in which `backquoted` parts become <code>.
function withCode(text) {
  const paragraph = document.createElement("p");
  text.split("`").forEach((part, index) => {
    if (index % 2) {
      const code = document.createElement("code");
      code.textContent = part;
      paragraph.append(code);
    } else {
      paragraph.append(part);
    }
  });
  return paragraph;
}
