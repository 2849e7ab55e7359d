"""How two sets of one image agree, as the cell-segmentation literature
scores it: matches at IoU >= a threshold (matching.py), then true
positives, false positives, false negatives, F1, the mean IoU of the
matches, and panoptic quality PQ = SQ x RQ, where SQ is that mean IoU and
RQ = TP / (TP + FP/2 + FN/2) (which is F1). `a` plays the reference, so a
false positive is an instance of `b` that matches nothing; swapping the
sets swaps FP and FN and changes nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from worker.quality.matching import Rle, match


@dataclass(frozen=True)
class Labelled:
    rle: Rle
    label: int  # a label id; matches with different labels are class disagreements


@dataclass(frozen=True)
class PairScore:
    tp: int
    fp: int
    fn: int
    f1: float
    mean_iou: float  # SQ: over the matches; 0 when there are none
    pq: float
    class_disagreements: int  # matches whose labels differ

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pair_score(a: Sequence[Labelled], b: Sequence[Labelled], threshold: float = 0.5) -> PairScore:
    """Agreement of `b` with `a`. Two empty sets agree perfectly (F1 = PQ = 1)."""
    found = match([x.rle for x in a], [x.rle for x in b], threshold)
    tp = len(found.pairs)
    fp, fn = len(found.unmatched_b), len(found.unmatched_a)
    if tp + fp + fn == 0:
        return PairScore(0, 0, 0, 1.0, 1.0, 1.0, 0)
    f1 = tp / (tp + 0.5 * fp + 0.5 * fn)
    mean_iou = sum(iou for _, _, iou in found.pairs) / tp if tp else 0.0
    differ = sum(1 for i, j, _ in found.pairs if a[i].label != b[j].label)
    return PairScore(tp, fp, fn, f1, mean_iou, mean_iou * f1, differ)
