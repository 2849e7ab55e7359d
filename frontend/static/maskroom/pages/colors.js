// Label colours given by the server as data-color (the Content-Security-Policy
// allows no inline style attributes): a chip takes it as its border colour,
// a swatch as its background.

for (const node of document.querySelectorAll("[data-color]")) {
  const color = node.dataset.color;
  if (node.classList.contains("chip")) node.style.setProperty("--chip", color);
  else node.style.background = color;
}
