#!/usr/bin/env python3
"""Create MASKROOM_HOME/secret_key (readable by its owner only) unless it exists.

`make run` calls it before any manage.py command: without DEBUG, the settings
need a key, and this one stays the same from one start to the next (sessions
and API tokens survive restarts). No Django here: the settings need the key.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def main() -> int:
    default = Path(__file__).resolve().parents[1] / ".maskroom"
    home = Path(os.environ.get("MASKROOM_HOME") or default)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return 0
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(50) + "\n")
    print(f"Created a secret key in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
