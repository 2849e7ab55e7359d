// The WebSocket wire protocol, written once on the browser side.
// Its twin is backend/segmentation/live/protocol.py; both are documented in docs/api.md.
// Coordinates are image pixels in the full-resolution frame.

export const PROMPT = "prompt";
export const RESET = "reset";
export const REFINE = "refine";
export const MASK = "mask";
export const STATUS = "status";
export const ERROR = "error";
// The prompt was decoded with later ones (the next mask holds it), or a later
// reset or refine made it moot: no mask comes for it.
export const SUPERSEDED = "superseded";
// Working together: someone saved a change to an instance of this image; many
// changed at once (reload the set); someone opened or closed the image; a
// proposal job on the image changed (its JSON).
export const INSTANCE = "instance";
export const INSTANCES = "instances";
export const PRESENCE = "presence";
export const PROPOSALS = "proposals";
export const PROPAGATION = "propagation";
// The types the server sends (the socket warns of any other).
export const SERVER_TYPES = [STATUS, MASK, SUPERSEDED, ERROR, INSTANCE, INSTANCES, PRESENCE, PROPOSALS, PROPAGATION];
// At most this many points per object (since the last reset).
export const MAX_OBJECT_POINTS = 64;

// Close code when the image does not exist or the user may not see it: stop retrying.
export const CLOSE_NOT_FOUND = 4404;
// Close code for a client that keeps too many messages waiting.
export const CLOSE_TOO_MANY = 4429;

export const POSITIVE = 1;
export const NEGATIVE = 0;

export function promptMessage(requestId, pointsXyImage, boxXyxyImage) {
  return { type: PROMPT, request_id: requestId, points: pointsXyImage, box: boxXyxyImage ?? null };
}

// Reopen a saved instance of this image as the mask that the next prompts refine.
// `assignment`: the person's set the instance belongs to (null: the curated set).
export function refineMessage(requestId, instanceId, assignment = null) {
  const message = { type: REFINE, request_id: requestId, instance_id: instanceId };
  if (assignment) message.assignment = assignment;
  return message;
}

export function resetMessage() {
  return { type: RESET };
}
