"""How deep a JSON text nests, counted at C speed: a bound both the REST
parser (backend/common/parsers.py) and the WebSocket protocol
(backend/segmentation/live/protocol.py) put on what clients send, before any
recursion in `json` can run out of stack."""

from __future__ import annotations

import re

import numpy as np

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def nesting_depth(text: str, *, beyond: int) -> int:
    """How deep the brackets of a JSON text nest, counted outside strings (a
    regex and a cumulative sum); 0 when there are at most `beyond` brackets,
    which cannot nest deeper than that."""
    if text.count("[") + text.count("{") <= beyond:
        return 0
    chars = np.frombuffer(_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    opens = (chars == ord("[")) | (chars == ord("{"))
    steps = opens.astype(np.int32) - ((chars == ord("]")) | (chars == ord("}")))
    return int(np.cumsum(steps).max()) if steps.size else 0
