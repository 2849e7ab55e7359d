"""Run as a program (tests/backend/work/test_queue_sqlite.py starts it): the
embedded default, SQLite in a fresh MASKROOM_HOME, with CALLERS threads
asking the queue at the same moment. Prints JSON: how many sets each image
and each person got, and the answers."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

CALLERS = 30


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="sqlite-race-"))
    os.environ.update(
        MASKROOM_HOME=str(home), DJANGO_SETTINGS_MODULE="backend.settings", DEBUG="true"
    )
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from backend.common.home import home_folders_create

    home_folders_create()
    call_command("migrate", verbosity=0, interactive=False)
    assert connection.vendor == "sqlite"

    from backend.annotations.models import Assignment
    from backend.work.queue import queue_next
    from tests.backend.work.people import make_class

    overlap, images = 2, 10
    group = make_class(students=CALLERS, images=images, overlap=overlap)
    barrier = threading.Barrier(CALLERS)
    answers: list[str] = []

    def ask(user: object) -> None:
        try:
            barrier.wait()
            found = queue_next(project=group.project, user=user)
            answers.append("set" if found is not None else "none")
        except Exception as exc:  # reported, and the test fails on it
            answers.append(f"error: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(u,)) for u in group.students]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_image = Counter(Assignment.objects.values_list("image_id", flat=True))
    per_person = Counter(Assignment.objects.values_list("annotator_id", flat=True))
    print(
        json.dumps(
            {
                "places": overlap * images,
                "overlap": overlap,
                "per_image": list(per_image.values()),
                "per_person": list(per_person.values()),
                "answers": dict(Counter(answers)),
            }
        )
    )


if __name__ == "__main__":
    main()
