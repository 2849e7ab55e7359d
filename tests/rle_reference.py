"""The mask-counts parser maskroom had before worker/rle.py's: a port of
pycocotools' rleFrString in Python, character by character. Each number's
characters are OR-ed into a Python int, so a number of n characters costs n
big-integer shifts of growing size (quadratic). Kept as the reference the
tests check the new parser against, and the baseline bench/abuse.py times."""

from __future__ import annotations


def reference_counts(counts: str) -> list[int]:
    runs: list[int] = []
    i = 0
    while i < len(counts):
        value, shift, more = 0, 0, True
        while more:
            c = ord(counts[i]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            i += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs
