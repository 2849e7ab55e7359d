// The display settings of one image: per channel visibility, colour or LUT
// and contrast limits, kept per project on the server
// (GET/PUT/DELETE /api/projects/{id}/display/, see docs/api.md).
//
// The server stores per channel index {visible, color, min, max}; null
// limits mean "this image's default": the full 0-255 range for 8-bit colour
// images, else the percentile stretch (the pyramid's p_low and p_high).
// Entries for channels this image lacks (saved from another image of the
// project) are kept as they are.
//
// Events: "change" {kind}: kind "channels" when what is shown changed,
// "save" when only the save state did.

import { api, csrfToken, endpoints } from "../lib/api.js";

const DEFAULT_ORDER = ["red", "green", "blue", "cyan", "magenta", "yellow", "grey", "grey"];
const SAVE_DELAY_MS = 400;

export class DisplaySettings extends EventTarget {
  // image: GET /api/images/{id}/ (with `pyramid`); stored: the project's {channels}.
  constructor({ projectId, image, stored }) {
    super();
    this.projectId = projectId;
    this.image = image;
    this.stats = image.pyramid.channels;
    this.count = image.channels;
    this.isRgb8 = image.pyramid.dtype === "uint8" && this.count >= 3;
    this.isInteger = !image.pyramid.dtype.startsWith("float");
    this.saveState = "saved";
    this.timer = null;
    this.sending = Promise.resolve();
    this.queued = 0; // PUTs sent or waiting
    this.apply(stored);
    addEventListener("pagehide", () => this.flush({ keepalive: true }));
  }

  notify(kind = "channels") {
    this.dispatchEvent(new CustomEvent("change", { detail: { kind } }));
  }

  apply(stored) {
    this.stored = Array.isArray(stored?.channels) ? stored.channels : [];
    this.channels = [];
    for (let c = 0; c < this.count; c += 1) {
      const saved = this.stored[c] ?? {};
      const explicit = Number.isFinite(saved.min) && Number.isFinite(saved.max);
      const [min, max] = explicit ? [saved.min, saved.max] : this.defaultLimits(c);
      this.channels.push({
        visible: saved.visible ?? true,
        color: saved.color ?? this.defaultColor(c),
        min,
        max,
        explicit,
      });
    }
  }

  defaultColor(c) {
    if (this.count === 1) return "grey";
    return DEFAULT_ORDER[c] ?? "grey";
  }

  defaultLimits(c) {
    return this.isRgb8 ? [0, 255] : this.autoLimits(c);
  }

  // The percentile stretch of channel c (its min and max when that is flat).
  autoLimits(c) {
    const s = this.stats[c] ?? {};
    if (Number.isFinite(s.p_low) && Number.isFinite(s.p_high) && s.p_high > s.p_low) return [s.p_low, s.p_high];
    if (Number.isFinite(s.min) && Number.isFinite(s.max) && s.max > s.min) return [s.min, s.max];
    const base = Number.isFinite(s.min) ? s.min : 0;
    return [base, base + 1];
  }

  // [lo, hi, step] for channel c's sliders: the channel's values and its limits.
  range(c) {
    const s = this.stats[c] ?? {};
    const { min, max } = this.channels[c];
    let lo = Math.min(Number.isFinite(s.min) ? s.min : min, min);
    let hi = Math.max(Number.isFinite(s.max) ? s.max : max, max);
    if (this.image.pyramid.dtype === "uint8") [lo, hi] = [Math.min(lo, 0), Math.max(hi, 255)];
    if (hi <= lo) hi = lo + 1;
    const step = this.isInteger ? 1 : (hi - lo) / 1000;
    return [lo, hi, step];
  }

  // What the compositor needs: [{visible, color, min, max}] per channel.
  resolved() {
    return this.channels;
  }

  // Change channel c: {visible, color, min, max}; limits must keep min < max.
  set(c, patch) {
    const channel = this.channels[c];
    const next = { ...channel, ...patch };
    if ("min" in patch || "max" in patch) {
      if (!(Number.isFinite(next.min) && Number.isFinite(next.max) && next.min < next.max)) return false;
      next.explicit = true;
    }
    this.channels[c] = next;
    this.changed();
    return true;
  }

  // Contrast limits of channel c from the percentile stretch.
  auto(c) {
    const [min, max] = this.autoLimits(c);
    return this.set(c, { min, max });
  }

  // Forget the project's settings: every channel back to its default.
  async reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.setSaveState("saving");
    try {
      const stored = await api(endpoints.projectDisplay(this.projectId), { method: "DELETE" });
      this.apply(stored);
      this.setSaveState("saved");
    } catch (err) {
      this.setSaveState("error", err.message);
    }
    this.notify();
  }

  changed() {
    this.notify();
    this.setSaveState("pending");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), SAVE_DELAY_MS);
  }

  // What the server keeps: this image's channels, then any others already stored.
  payload() {
    const channels = this.channels.map(({ visible, color, min, max, explicit }) => ({
      visible,
      color,
      min: explicit ? min : null,
      max: explicit ? max : null,
    }));
    return { channels: [...channels, ...this.stored.slice(this.count)] };
  }

  async flush({ keepalive = false } = {}) {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    const body = this.payload();
    if (keepalive) {
      // The page is going away: a request that outlives it, nothing to wait for.
      const headers = { "Content-Type": "application/json", "X-CSRFToken": csrfToken() };
      fetch(endpoints.projectDisplay(this.projectId), { method: "PUT", headers, body: JSON.stringify(body), keepalive: true });
      return;
    }
    this.setSaveState("saving");
    // One PUT at a time, in order, so the last change is the one that stays.
    const previous = this.sending;
    this.queued += 1;
    this.sending = (async () => {
      await previous;
      try {
        const stored = await api(endpoints.projectDisplay(this.projectId), { method: "PUT", json: body });
        this.stored = stored.channels;
        if (this.timer === null && this.queued === 1) this.setSaveState("saved");
      } catch (err) {
        this.setSaveState("error", err.message);
      } finally {
        this.queued -= 1;
      }
    })();
    await this.sending;
  }

  setSaveState(state, detail = "") {
    this.saveState = state;
    this.saveDetail = detail;
    this.notify("save");
  }
}
