// Ordered delivery of pending saves: one request at a time, oldest first;
// when the server cannot be reached (no answer, 5xx, 408, 429) the operation
// stays first in line and is tried again with exponential backoff, or at once
// when the browser says it is back online. What an answer means is up to the
// owner (InstanceStore), through settle(). No DOM here but fetch and timers.
//
// Events: "change" after each step (an operation sent, settled or put off).

import { httpRequest } from "../lib/api.js";

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 15000;

function unreachable(status) {
  return status === 0 || status >= 500 || status === 408 || status === 429;
}

export class SaveQueue extends EventTarget {
  // request(path, options) -> {status, body}; requestOf(op) -> [path, options];
  // settle(op, status, body) handles an answer.
  constructor({ request = httpRequest, requestOf, settle }) {
    super();
    this.request = request;
    this.requestOf = requestOf;
    this.settle = settle;
    this.ops = []; // operations not yet settled, oldest first (plain JSON)
    this.inFlight = null; // the one being sent, still ops[0]
    this.offline = false; // the last try got no answer at all
    this.retryTimer = null;
    this.retryMs = FIRST_RETRY_MS;
    window.addEventListener("online", () => this.retryNow());
  }

  get length() {
    return this.ops.length;
  }

  // The last operation on `id` that is not being sent (so may still change).
  last(id) {
    for (let i = this.ops.length - 1; i >= 0; i -= 1) {
      const op = this.ops[i];
      if (op.id === id) return op === this.inFlight ? null : op;
    }
    return null;
  }

  // Take out the operations on `id` that are not being sent; returns them.
  drop(id) {
    const dropped = this.ops.filter((op) => op.id === id && op !== this.inFlight);
    this.ops = this.ops.filter((op) => !dropped.includes(op));
    return dropped;
  }

  has(id, except = null) {
    return this.ops.some((op) => op !== except && op.id === id);
  }

  retryNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.flush();
  }

  async send(op) {
    try {
      return await this.request(...this.requestOf(op));
    } catch (err) {
      console.error("maskroom: saving failed", err);
      return { status: 0, body: null };
    }
  }

  async flush() {
    if (this.inFlight || this.retryTimer) return;
    while (this.ops.length) {
      const op = this.ops[0];
      this.inFlight = op;
      this.changed();
      const answer = await this.send(op);
      if (unreachable(answer.status)) {
        this.inFlight = null;
        this.offline = answer.status === 0;
        this.retryTimer = setTimeout(() => this.retryNow(), this.retryMs);
        this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
        break;
      }
      try {
        this.settle(op, answer.status, answer.body); // op is still inFlight: drop() keeps it
      } catch (err) {
        console.error("maskroom: could not apply the server's answer", err);
      }
      this.inFlight = null;
      this.offline = false;
      this.retryMs = FIRST_RETRY_MS;
      this.ops = this.ops.filter((queued) => queued !== op);
    }
    this.changed();
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }
}
