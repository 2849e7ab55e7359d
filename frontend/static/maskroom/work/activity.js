// The annotator's activity on their set, reported to the server every 30 s
// (POST /api/assignments/{id}/activity/ {"seconds", "prompts"}): seconds
// count only while the user is active (a pointer or key input within the
// last minute), not the wall clock; prompts are the points and boxes the
// prompt session sent since the last report. A project manager reads
// throughput and clicks per object from these.

import { csrfToken, endpoints, httpRequest } from "../lib/api.js";

const REPORT_MS = 30_000;
const IDLE_MS = 60_000; // no input for this long: the time stops counting
const TICK_MS = 1000;
const MAX_SECONDS = 120; // what one report may carry (the server's bound)
const INPUTS = ["pointerdown", "pointermove", "keydown", "wheel"];

export class ActivityReporter {
  // session: the PromptSession (its "prompt" events are counted).
  constructor({ assignmentId, session, target = window, now = () => Date.now() }) {
    this.assignmentId = assignmentId;
    this.now = now;
    this.lastInput = now(); // opening the set counts as input
    this.lastTick = now();
    this.activeMs = 0;
    this.prompts = 0;
    this.sending = null;
    const input = () => {
      this.lastInput = this.now();
    };
    for (const type of INPUTS) target.addEventListener(type, input, { passive: true, capture: true });
    session.addEventListener("prompt", () => {
      this.prompts += 1;
    });
    this.tickTimer = setInterval(() => this.tick(), TICK_MS);
    this.reportTimer = setInterval(() => this.report(), REPORT_MS);
    // What is left when the page goes away (best effort: the answer is not awaited).
    window.addEventListener("pagehide", () => this.sendOnUnload());
  }

  // Time since the last tick counts if the user was active during it.
  tick() {
    const now = this.now();
    if (now - this.lastInput <= IDLE_MS) this.activeMs += now - this.lastTick;
    this.lastTick = now;
  }

  // What a report would carry now (whole seconds; the rest waits for the next).
  pending() {
    return { seconds: Math.min(MAX_SECONDS, Math.floor(this.activeMs / 1000)), prompts: this.prompts };
  }

  // Send what accumulated; resolves when the server took it (or refused it).
  async report() {
    if (this.sending) return this.sending;
    this.tick();
    const body = this.pending();
    if (!body.seconds && !body.prompts) return null;
    this.sending = (async () => {
      const answer = await httpRequest(endpoints.assignmentAction(this.assignmentId, "activity"), {
        method: "POST",
        json: body,
      });
      // Only what the server took is taken off; a failed report is sent again later.
      if (answer.status === 200) {
        this.activeMs -= body.seconds * 1000;
        this.prompts -= body.prompts;
      }
      return answer;
    })();
    try {
      return await this.sending;
    } finally {
      this.sending = null;
    }
  }

  stop() {
    clearInterval(this.tickTimer);
    clearInterval(this.reportTimer);
  }

  sendOnUnload() {
    this.tick();
    const body = this.pending();
    if (!body.seconds && !body.prompts) return;
    this.activeMs -= body.seconds * 1000;
    this.prompts -= body.prompts;
    fetch(endpoints.assignmentAction(this.assignmentId, "activity"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
      credentials: "same-origin",
      keepalive: true,
    }).catch(() => {});
  }
}
