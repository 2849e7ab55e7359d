// What a reviewer's picks from people's sets become in the curated set: each
// picked instance as it is, or (merge) one instance of their union with the
// most common label; each names the instances it came from (its sources).
// No DOM: it also runs under node for the tests.

import { cropFromRle, toRle, union } from "../instances/maskops.js";

function mostCommon(values) {
  const counts = new Map();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
}

// items: [{id, labelId, rle}]; size: [h, w]. Returns [{labelId, rle, sources}].
export function picksToInstances(items, { merge, size }) {
  const groups = merge ? [items] : items.map((item) => [item]);
  return groups.map((group) => ({
    labelId: mostCommon(group.map((item) => item.labelId)),
    rle: toRle(group.map((item) => cropFromRle(item.rle)).reduce((a, b) => union(a, b)), size),
    sources: group.map((item) => item.id),
  }));
}
