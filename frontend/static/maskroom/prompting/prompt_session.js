// The live prompt session: the object being segmented by prompts over the
// WebSocket, with the prompts given so far and the latest mask. (Not the
// automatic proposals of the worker: those are instances in the store, see
// instances/proposal_review.js.) `refining` is the saved instance reopened as
// the mask (refine), or null.
//
// Points accumulate on the server, so each prompt message carries only the new
// point (or the new box, which replaces the old one). Masks answering requests
// sent before the last clear() are dropped, and so are masks older than the
// one on screen.
//
// `assignment`: the person's set the editor shows (null: the curated set);
// a refine names it, as the instance belongs to it.
//
// Events: "change" whenever the prompts or the mask change; "prompt" for each
// point or box the user gives (not the replays after a reconnect), which the
// work queue counts (work/activity.js).

import { POSITIVE, promptMessage, refineMessage } from "./protocol.js";
import { area, decodeCrop } from "../instances/rle.js";

export class PromptSession extends EventTarget {
  constructor({ assignment = null } = {}) {
    super();
    this.assignment = assignment;
    this.points = []; // [[x, y, 1|0], ...] in image pixels
    this.box = null; // [x0, y0, x1, y1] in image pixels
    this.mask = null; // {requestId, score, rle, area, crop}
    this.refining = null; // the id of the instance being refined
    this.nextRequestId = 1;
    this.lastAnswered = 0; // the newest request answered by a mask or an error
    this.discardThrough = 0;
    this.unanswered = new Map(); // requestId -> what that prompt added, to undo on error
  }

  get isEmpty() {
    return this.points.length === 0 && this.box === null && this.refining === null;
  }

  get awaiting() {
    return this.nextRequestId - 1 > Math.max(this.lastAnswered, this.discardThrough);
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }

  addPoint(x, y, label = POSITIVE) {
    const point = [round2(x), round2(y), label];
    this.points.push(point);
    this.unanswered.set(this.nextRequestId, { point });
    this.changed();
    this.dispatchEvent(new Event("prompt"));
    return promptMessage(this.nextRequestId++, [point], null);
  }

  setBox(x0, y0, x1, y1) {
    this.unanswered.set(this.nextRequestId, { previousBox: this.box });
    this.box = [round2(Math.min(x0, x1)), round2(Math.min(y0, y1)), round2(Math.max(x0, x1)), round2(Math.max(y0, y1))];
    this.changed();
    this.dispatchEvent(new Event("prompt"));
    return promptMessage(this.nextRequestId++, [], this.box);
  }

  // Start over from a saved instance: the server answers with its mask, and
  // the next prompts refine it.
  refine(instanceId) {
    this.clear();
    this.refining = instanceId;
    this.unanswered.set(this.nextRequestId, { refine: instanceId });
    this.changed();
    return refineMessage(this.nextRequestId++, instanceId, this.assignment);
  }

  // Everything so far in one prompt, for a fresh connection that knows nothing.
  replayMessage() {
    if (this.points.length === 0 && this.box === null) return null;
    return promptMessage(this.nextRequestId++, this.points.slice(), this.box);
  }

  // What a fresh connection needs, in order: the refine, then the prompts.
  replayMessages() {
    const messages = this.refining === null ? [] : [refineMessage(this.nextRequestId++, this.refining, this.assignment)];
    const prompt = this.replayMessage();
    return prompt ? [...messages, prompt] : messages;
  }

  // Returns true when the mask was taken.
  applyMask(message) {
    const requestId = message.request_id ?? this.nextRequestId - 1;
    this.answered(requestId);
    if (this.isEmpty || requestId <= this.discardThrough) return false;
    if (this.mask && requestId < this.mask.requestId) return false;
    const crop = decodeCrop(message.rle);
    this.mask = { requestId, score: message.score, rle: message.rle, area: area(message.rle), crop };
    this.changed();
    return true;
  }

  answered(requestId) {
    if (requestId !== null && requestId !== undefined) {
      this.lastAnswered = Math.max(this.lastAnswered, requestId);
      this.unanswered.delete(requestId);
    }
  }

  // The server refused a prompt and kept its state without it: so do we.
  rejected(requestId) {
    const added = this.unanswered.get(requestId);
    this.answered(requestId);
    if (!added || requestId <= this.discardThrough) return;
    if (added.refine !== undefined) this.refining = null;
    else if (added.point) this.points = this.points.filter((point) => point !== added.point);
    else this.box = added.previousBox;
    this.changed();
  }

  clear() {
    this.points = [];
    this.box = null;
    this.mask = null;
    this.refining = null;
    this.discardThrough = this.nextRequestId - 1;
    this.unanswered.clear();
    this.changed();
  }
}

function round2(value) {
  return Math.round(value * 100) / 100;
}
