"""The queue on the embedded default (SQLite): 30 callers at once, in a
separate process with its own SQLite database (the suite's database is
PostgreSQL under `make test`)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.paths import REPO


def test_thirty_at_once_on_sqlite_never_over_assign() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.backend.work.sqlite_race"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert max(found["per_image"]) <= found["overlap"]
    assert max(found["per_person"]) == 1
    assert sum(found["per_image"]) == min(found["places"], 30)
    assert found["answers"] == {
        "set": min(found["places"], 30),
        "none": 30 - min(found["places"], 30),
    }
