// How the validation figures of a model are shown: one row per figure, the
// better direction of each (fewer clicks, higher IoU), and number formats.

export const FIGURES = [
  ["noc85", "clicks to IoU 0.85 (NoC@85)", "lower", 2],
  ["noc90", "clicks to IoU 0.90 (NoC@90)", "lower", 2],
  ["miou_at_1", "IoU after 1 click", "higher", 3],
  ["miou_at_3", "IoU after 3 clicks", "higher", 3],
  ["miou_at_5", "IoU after 5 clicks", "higher", 3],
  ["box_iou", "IoU of a box", "higher", 3],
  ["proposal_f1", "proposals F1 at IoU 0.5", "higher", 3],
  ["proposal_pq", "proposals PQ", "higher", 3],
  ["proposal_box_f1", "F1 of proposal boxes (a detector's own)", "higher", 3],
];

export const fixed = (value, digits) =>
  value === null || value === undefined ? "–" : Number(value).toFixed(digits);

// "better", "worse" or "" for after against before.
export function compare(after, before, direction) {
  if (after === null || after === undefined || before === null || before === undefined || after === before) {
    return "";
  }
  return (direction === "lower") === after < before ? "better" : "worse";
}
