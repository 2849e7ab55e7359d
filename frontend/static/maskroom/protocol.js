// The WebSocket wire protocol, written once on the browser side.
// Its twin is backend/segmentation/protocol.py; both are documented in docs/api.md.
// Coordinates are image pixels in the full-resolution frame.

export const PROMPT = "prompt";
export const RESET = "reset";
export const REFINE = "refine";
export const MASK = "mask";
export const STATUS = "status";
export const ERROR = "error";

// Close code when the image does not exist or the user may not see it: stop retrying.
export const CLOSE_NOT_FOUND = 4404;

export const POSITIVE = 1;
export const NEGATIVE = 0;

export function promptMessage(requestId, pointsXyImage, boxXyxyImage) {
  return { type: PROMPT, request_id: requestId, points: pointsXyImage, box: boxXyxyImage ?? null };
}

// Reopen a saved instance of this image as the mask that the next prompts refine.
export function refineMessage(requestId, instanceId) {
  return { type: REFINE, request_id: requestId, instance_id: instanceId };
}

export function resetMessage() {
  return { type: RESET };
}

export function socketUrl(imageId) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}/ws/images/${imageId}/`;
}
