// Small DOM helpers shared by the pages.

// el("li", {class: "x", dataset: {id: 1}, onclick: fn}, "text", child)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

// Whether a key press is text being typed (the editor's keys leave it alone).
export function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
}

export function formatArea(pixels) {
  return pixels >= 10000 ? `${(pixels / 1000).toFixed(1)}k px` : `${pixels} px`;
}
