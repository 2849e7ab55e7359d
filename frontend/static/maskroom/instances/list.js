// The instances panel: one row per instance (label, area, author), sortable,
// virtualised: only the rows in view (and a few around) are in the DOM, so
// 2,000 instances cost what 30 do. Clicking a row centres its instance in the
// viewer, zooms to it and selects it; the selection made on the canvas
// scrolls its row into view.
//
// Events: "relabel" {id, labelId} and "delete" {id} when a row's label or its
// delete button is used. The list does not change the instance itself: the
// editor does, through Edits (edits.js), so that the change can be undone.

import { el, formatArea } from "../lib/dom.js";

const ROW_PX = 30; // every row is this tall (style.css: table.instances tbody tr)
const OVERSCAN = 8; // rows rendered beyond each edge of the view
const COLUMNS = 5;

const SORTS = {
  id: (a, b) => compareIds(a.id, b.id),
  label: (a, b) => String(a.label ?? "").localeCompare(String(b.label ?? "")) || compareIds(a.id, b.id),
  area: (a, b) => (a.area ?? 0) - (b.area ?? 0) || compareIds(a.id, b.id),
  author: (a, b) => authorName(a.author).localeCompare(authorName(b.author)) || compareIds(a.id, b.id),
};

// Saved ids are numbers; unsaved ones ("local-3") come after them.
function compareIds(a, b) {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function authorName(author) {
  if (author === null || author === undefined) return "—";
  if (typeof author === "object") return author.username ?? String(author.id ?? "");
  return String(author);
}

export class InstanceList extends EventTarget {
  // nodes: {scroll (the scrolling box), body (tbody), count, head (thead)}.
  constructor({ store, layer, viewer, labels, nodes }) {
    super();
    this.store = store;
    this.layer = layer;
    this.viewer = viewer;
    this.labels = labels;
    this.nodes = nodes;
    this.sort = { key: "id", descending: false };
    this.order = []; // the store's instances, sorted
    this.orderStale = true;
    this.renderRequested = false;
    this.window = { first: -1, last: -1, version: -1 };
    this.version = 0; // bumped on every change, so the same window re-renders
    this.renderedRows = 0; // rows built so far (tests check the list stays lazy)
    nodes.scroll.addEventListener("scroll", () => this.requestRender(), { passive: true });
    new ResizeObserver(() => this.requestRender()).observe(nodes.scroll);
    nodes.head?.addEventListener("click", (event) => this.onHeadClick(event));
    store.addEventListener("change", () => this.changed());
    store.addEventListener("load", () => this.changed());
    layer.addEventListener("selectionchange", (event) => this.onSelection(event.detail.ids));
    this.changed();
  }

  changed() {
    this.orderStale = true;
    this.version += 1;
    this.requestRender();
  }

  sortBy(key) {
    if (!SORTS[key]) return;
    this.sort = { key, descending: this.sort.key === key ? !this.sort.descending : false };
    this.changed();
  }

  onHeadClick(event) {
    const button = event.target.closest("[data-sort]");
    if (button) this.sortBy(button.dataset.sort);
  }

  sorted() {
    if (this.orderStale) {
      const compare = SORTS[this.sort.key];
      this.order = this.store.all().sort(this.sort.descending ? (a, b) => compare(b, a) : compare);
      this.orderStale = false;
    }
    return this.order;
  }

  requestRender() {
    if (this.renderRequested) return;
    this.renderRequested = true;
    requestAnimationFrame(() => {
      this.renderRequested = false;
      this.render();
    });
  }

  // --- rendering the rows in view ---------------------------------------------

  render() {
    const order = this.sorted();
    this.nodes.count.textContent = String(order.length);
    this.renderHead();
    const { scrollTop, clientHeight } = this.nodes.scroll;
    const headHeight = this.nodes.head?.offsetHeight ?? 0;
    const top = Math.max(0, scrollTop - headHeight);
    const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN);
    const last = Math.min(order.length, Math.ceil((top + clientHeight) / ROW_PX) + OVERSCAN);
    const same = this.window.first === first && this.window.last === last;
    if (same && this.window.version === this.version) return;
    this.window = { first, last, version: this.version };
    if (!order.length) {
      this.nodes.body.replaceChildren(el("tr", { class: "empty" }, el("td", { colSpan: COLUMNS }, "No instances yet.")));
      return;
    }
    const rows = [spacer(first * ROW_PX)];
    for (let i = first; i < last; i += 1) rows.push(this.row(order[i]));
    rows.push(spacer((order.length - last) * ROW_PX));
    this.renderedRows += last - first;
    this.nodes.body.replaceChildren(...rows);
  }

  renderHead() {
    for (const button of this.nodes.head?.querySelectorAll("[data-sort]") ?? []) {
      const active = button.dataset.sort === this.sort.key;
      const direction = this.sort.descending ? "descending" : "ascending";
      button.closest("th").setAttribute("aria-sort", active ? direction : "none");
    }
  }

  row(instance) {
    const id = instance.id;
    const label = this.labels.find((l) => l.id === instance.label_id);
    const select = el(
      "select",
      {
        "aria-label": `Label of instance ${id}`,
        class: "relabel",
        onchange: (event) => {
          this.dispatchEvent(new CustomEvent("relabel", { detail: { id, labelId: Number(event.target.value) } }));
          // Give the keys (1-9, Enter) back to the editor.
          this.viewer.canvas.focus({ preventScroll: true });
        },
      },
      this.labels.map((option) => el("option", { value: option.id, selected: label?.id === option.id }, option.name)),
    );
    const selected = this.layer.selected.has(id);
    return el(
      "tr",
      {
        class: selected ? "selected" : null,
        "aria-selected": String(selected),
        dataset: { instanceId: id },
        onclick: (event) => {
          if (event.target.closest("select, button")) return;
          this.activate(id);
        },
        onmouseenter: () => this.layer.setHovered(id),
        onmouseleave: () => this.layer.setHovered(null),
      },
      el("td", {}, el("span", { class: "swatch", style: { background: label?.color ?? "#888" } }), displayId(id)),
      el("td", {}, select),
      el("td", { class: "num" }, formatArea(instance.area ?? 0)),
      el("td", { class: "author", title: authorName(instance.author) }, authorName(instance.author)),
      el(
        "td",
        {},
        el("button", {
          type: "button",
          class: "icon danger",
          title: "Delete this instance",
          "aria-label": `Delete instance ${id}`,
          onclick: () => this.dispatchEvent(new CustomEvent("delete", { detail: { id } })),
        }, "✕"),
      ),
    );
  }

  // --- actions ----------------------------------------------------------------

  // Centre the instance in the viewer, zoomed so it fills about a third of it, and select it.
  activate(id) {
    const bbox = this.layer.bboxOf(id);
    if (bbox) showImageRect(this.viewer, bbox);
    this.layer.setSelected([id]);
    this.viewer.canvas.focus({ preventScroll: true });
  }

  onSelection(ids) {
    this.version += 1;
    if (ids.length) this.scrollToInstance(ids[ids.length - 1]);
    this.requestRender();
  }

  // Scroll the list just enough for the instance's row to be in view.
  scrollToInstance(id) {
    const index = this.sorted().findIndex((instance) => instance.id === id);
    if (index < 0) return;
    const scroll = this.nodes.scroll;
    const headHeight = this.nodes.head?.offsetHeight ?? 0;
    const top = headHeight + index * ROW_PX;
    if (top < scroll.scrollTop + headHeight) scroll.scrollTop = top - headHeight;
    else if (top + ROW_PX > scroll.scrollTop + scroll.clientHeight) scroll.scrollTop = top + ROW_PX - scroll.clientHeight;
  }
}

function spacer(height) {
  return el("tr", { class: "spacer", "aria-hidden": "true", style: { height: `${height}px` } }, el("td", { colSpan: COLUMNS }));
}

function displayId(id) {
  return typeof id === "number" ? String(id) : "new";
}

// Centre image rectangle [x, y, w, h] in the viewer, at a zoom where it spans
// about a third of the view (never past 8x), through the viewer's public moves.
export function showImageRect(viewer, [x, y, w, h]) {
  const rect = viewer.canvas.getBoundingClientRect();
  if (!rect.width || !rect.height) return;
  const target = Math.min(8, (Math.min(rect.width, rect.height) / 3) / Math.max(w, h, 1));
  const centre = { x: rect.left + rect.width / 2, y: rect.top + rect.height / 2 };
  viewer.zoomAt(centre, target / viewer.scale);
  const at = viewer.imageToScreen(x + w / 2, y + h / 2);
  viewer.panBy(centre.x - at.x, centre.y - at.y);
}
