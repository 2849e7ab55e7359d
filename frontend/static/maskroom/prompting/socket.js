// The image's WebSocket: JSON messages dispatched by type, reconnecting with
// exponential backoff when the connection drops.
//
// Events: "open"; "close" {code, retryInMs} (retryInMs null: no retry); and
// each message from the server as an event of its type (protocol.js), the
// message as its detail.

import { SERVER_TYPES } from "./protocol.js";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;

export class SegmentationSocket extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.retryMs = FIRST_RETRY_MS;
    this.retryTimer = null;
    this.closedByUs = false;
    // Back online: retry now rather than at the end of a long backoff.
    window.addEventListener("online", () => {
      if (this.retryTimer !== null && !this.closedByUs) {
        clearTimeout(this.retryTimer);
        this.retryTimer = null;
        this.connect();
      }
    });
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    this.retryTimer = null;
    this.closedByUs = false;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.retryMs = FIRST_RETRY_MS;
      this.dispatchEvent(new Event("open"));
    });
    ws.addEventListener("message", (event) => this.dispatch(event.data));
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // 4xxx codes are the server refusing us (no access, no image): no retry.
      const retry = !this.closedByUs && !(event.code >= 4000 && event.code < 5000);
      const detail = { code: event.code, retryInMs: retry ? this.retryMs : null };
      this.dispatchEvent(new CustomEvent("close", { detail }));
      if (retry) this.scheduleRetry();
    });
  }

  scheduleRetry() {
    clearTimeout(this.retryTimer);
    // A little jitter so that many editors do not all come back at once.
    const delay = this.retryMs * (0.8 + 0.4 * Math.random());
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
  }

  dispatch(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      console.warn("maskroom: ignoring a non-JSON message", raw);
      return;
    }
    if (SERVER_TYPES.includes(message.type)) this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    else console.warn("maskroom: no handler for message type", message.type);
  }

  // Returns false when the message could not be sent (not connected).
  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  close() {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close();
  }
}
