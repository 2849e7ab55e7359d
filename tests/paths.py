"""Where things are, for tests in any folder."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "frontend" / "static" / "maskroom"
