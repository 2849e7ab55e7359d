// The image in the editor: its tile pyramid in the viewer and the channel
// panel that sets how each channel is shown (visibility, colour or LUT,
// contrast limits by slider, number or the "Auto" percentile stretch), plus
// which channels the model sees.

import { api, endpoints } from "../lib/api.js";
import { COLORS, swatch } from "./composite.js";
import { DisplaySettings } from "./display_settings.js";
import { el } from "../lib/dom.js";
import { TileSource } from "./tiles.js";
import { describeWindow, mountWindowBar } from "./windows.js";

// Show `image` (GET /api/images/{id}/) in `viewer` with the project's display
// settings and mount the channel panel. nodes: {list, reset, saveState,
// modelMapping, windowBar}; `stored`: the project's display settings (or a promise of
// them) when already asked for. Returns {tiles, settings, panel};
// `tiles.loaded()` resolves once the tiles on screen are drawn.
// body[data-tiles] is "loading" or "idle".
export async function mountImageView({ image, projectId, viewer, nodes, stored = null }) {
  stored = await (stored ?? api(endpoints.projectDisplay(projectId)));
  const settings = new DisplaySettings({ projectId, image, stored });
  const tiles = new TileSource({
    pyramid: image.pyramid,
    viewer,
    channels: () => settings.resolved(),
  });
  tiles.addEventListener("loadingchange", (event) => {
    document.body.dataset.tiles = event.detail.loading ? "loading" : "idle";
  });
  viewer.setImageSource(tiles, image.width, image.height);
  const panel = new ChannelPanel({ node: nodes.list, settings, saveStateNode: nodes.saveState });
  settings.addEventListener("change", (event) => {
    if (event.detail.kind === "channels") tiles.invalidate();
    panel.update();
  });
  nodes.reset?.addEventListener("click", (event) => {
    event.preventDefault(); // the button sits in the panel's <summary>: do not fold it
    settings.reset();
  });
  mountWindowBar({ node: nodes.windowBar, image, settings });
  if (nodes.modelMapping) showModelMapping(nodes.modelMapping, image);
  return { tiles, settings, panel };
}

// "Model sees: R = ch0, G = ch1, B = none"
export function describeMapping(mapping) {
  const names = ["R", "G", "B"];
  return (mapping ?? [])
    .map((channel, i) => `${names[i]} = ${channel === null || channel === undefined ? "none" : `ch${channel}`}`)
    .join(", ");
}

function showModelMapping(node, image) {
  const mapping = image.model_mapping;
  const window = image.model_window ? `; window ${describeWindow(image.model_window)}` : "";
  node.textContent = `Model sees: ${describeMapping(mapping)}${window}`;
  node.dataset.mapping = JSON.stringify(mapping);
  node.title = "The channels the segmentation model sees as red, green and blue. Project owners change them on the project page.";
}

class ChannelPanel {
  constructor({ node, settings, saveStateNode }) {
    this.node = node;
    this.settings = settings;
    this.saveStateNode = saveStateNode;
    this.rows = settings.channels.map((_, c) => this.buildRow(c));
    node.replaceChildren(...this.rows.map((row) => row.root));
    this.update();
  }

  buildRow(c) {
    const settings = this.settings;
    const visible = el("input", {
      type: "checkbox",
      class: "channel-visible",
      "aria-label": `Show channel ${c}`,
      onchange: () => settings.set(c, { visible: visible.checked }),
    });
    const color = el(
      "select",
      { class: "channel-color", "aria-label": `Colour of channel ${c}`, onchange: () => settings.set(c, { color: color.value }) },
      COLORS.map((name) => el("option", { value: name }, name)),
    );
    const auto = el(
      "button",
      { type: "button", class: "channel-auto", title: "Contrast from the 0.5th to the 99.5th percentile", onclick: () => settings.auto(c) },
      "Auto",
    );
    const limit = (which) => this.buildLimit(c, which);
    const min = limit("min");
    const max = limit("max");
    const root = el(
      "div",
      { class: "channel", dataset: { channel: String(c) } },
      el("div", { class: "channel-head" }, el("label", { class: "channel-name" }, visible, el("span", { class: "channel-swatch" }), `ch${c}`), color, auto),
      el("div", { class: "channel-limits" }, min.root, max.root),
    );
    return { root, visible, color, min, max, swatch: root.querySelector(".channel-swatch") };
  }

  // A slider and a number input for the min or max of channel c.
  buildLimit(c, which) {
    const settings = this.settings;
    const slider = el("input", { type: "range", class: `channel-${which}-slider`, "aria-label": `${which} of channel ${c}` });
    const number = el("input", { type: "number", class: `channel-${which}`, "aria-label": `${which} of channel ${c} (value)` });
    const setLimit = (value) => {
      const channel = settings.channels[c];
      const next = { min: channel.min, max: channel.max, [which]: Number(value) };
      return value !== "" && settings.set(c, next);
    };
    slider.addEventListener("input", () => {
      if (!setLimit(slider.value)) this.update(); // would cross the other limit: snap back
    });
    number.addEventListener("input", () => number.classList.toggle("invalid", !setLimit(number.value)));
    number.addEventListener("change", () => {
      number.classList.remove("invalid");
      this.update(true);
    });
    const root = el("label", { class: "channel-limit" }, el("span", {}, which), slider, number);
    return { root, slider, number };
  }

  // Show the settings; a number being typed in keeps its text unless `force`.
  update(force = false) {
    const settings = this.settings;
    settings.channels.forEach((channel, c) => {
      const row = this.rows[c];
      row.visible.checked = channel.visible;
      row.color.value = channel.color;
      row.swatch.style.background = swatch(channel.color);
      row.root.classList.toggle("hidden-channel", !channel.visible);
      const [lo, hi, step] = settings.range(c);
      for (const which of ["min", "max"]) {
        const { slider, number } = row[which];
        Object.assign(slider, { min: lo, max: hi, step });
        slider.value = channel[which];
        number.step = step;
        if (force || document.activeElement !== number) number.value = formatValue(channel[which], settings.isInteger);
      }
    });
    if (this.saveStateNode) {
      const text = { saved: "Saved for the project", pending: "Saving…", saving: "Saving…", error: "Not saved" };
      this.saveStateNode.textContent = settings.saveDetail ? `${text[settings.saveState]}: ${settings.saveDetail}` : text[settings.saveState];
      this.saveStateNode.dataset.state = settings.saveState;
    }
  }
}

function formatValue(value, isInteger) {
  if (isInteger) return String(Math.round(value));
  return String(Number(value.toPrecision(6)));
}
