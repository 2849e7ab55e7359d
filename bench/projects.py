"""Big projects: the project page, its image list and the work queue with
10,000 images and 200 members, against the same with 1,000 images, in the
same run (so the ratio says how each grows with the project).

Each project is made in the database of the benchmark's embedded server
(SQLite, as `make run` has it): images as rows (no pixels are read by
these pages), 200 annotators, and assignments on about 60% of the images
with overlap 2 and review on (in progress, submitted, accepted, returned),
so the progress counts have real work to do. Then, over HTTP against the
live server, each request is timed REPEATS times; the table gives p50 and
the worst, and the number of SQL queries one request makes (measured in
process with Django's query log), which must not grow with the page.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
from dataclasses import dataclass

from bench.common import Stats, Table, django_ready, live_server, options

SIZES = (1_000, 10_000)
MEMBERS = 200
PAGE = 60


@dataclass(frozen=True)
class Made:
    project_id: int
    images: int
    token: str
    annotator_tokens: list[str]


def run() -> list[Table]:
    django_ready()
    quick = options().quick
    repeats = 5 if quick else 20
    made = [_project(images) for images in SIZES]
    with live_server(label="projects") as server:
        base = server.url.replace("ws://", "http://", 1)
        rows = {m.images: _measure(base, m, repeats) for m in made}
    return [_table(rows, repeats), _queries_table(made[-1])]


def _project(images: int) -> Made:
    from django.contrib.auth.models import User

    from backend.accounts.services import token_for
    from backend.annotations.models import Assignment
    from backend.images.models import Image
    from backend.projects.models import Membership
    from backend.projects.services import project_create

    rng = random.Random(images)
    owner = User.objects.create_user(f"owner{images}", password="bench-password-1")
    project = project_create(user=owner, name=f"Big {images}", labels=["cell"])
    project.overlap, project.review = 2, True
    project.save(update_fields=["overlap", "review"])
    people = User.objects.bulk_create(
        User(username=f"p{images}-{n}", password="!") for n in range(MEMBERS)
    )
    Membership.objects.bulk_create(
        Membership(project=project, user=u, role="annotator") for u in people
    )
    Image.objects.bulk_create(
        (
            Image(
                project=project,
                name=f"field-{n:05d}.tif",
                original_path="x",
                planes_path="x",
                display_path="x",
                format="tiff",
                width=1024,
                height=1024,
                dtype="uint16",
                uploaded_by=owner,
            )
            for n in range(images)
        ),
        batch_size=2000,
    )
    ids = list(Image.objects.filter(project=project).values_list("id", flat=True))
    statuses = ["in_progress", "submitted", "accepted", "accepted", "returned"]
    sets = []
    for image_id in ids[: int(len(ids) * 0.6)]:
        for annotator in rng.sample(people, 2):
            sets.append(
                Assignment(image_id=image_id, annotator=annotator, status=rng.choice(statuses))
            )
    Assignment.objects.bulk_create(sets, batch_size=2000)
    tokens = [token_for(user=u).key for u in people[:5]]
    return Made(project.pk, images, token_for(user=owner).key, tokens)


def _request(base: str, path: str, token: str, method: str = "GET") -> tuple[int, float, bytes]:
    request = urllib.request.Request(
        base + path, method=method, headers={"Authorization": f"Token {token}"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
        status = int(response.status)
    return status, (time.perf_counter() - start) * 1000, body


def _paths(made: Made) -> dict[str, str]:
    p = made.project_id
    middle = made.images // 2
    return {
        "project (GET /api/projects/{id}/)": f"/api/projects/{p}/",
        "progress, first page": f"/api/projects/{p}/progress/?limit={PAGE}",
        "progress, a middle page": f"/api/projects/{p}/progress/?limit={PAGE}&offset={middle}",
        "progress, filter to do": f"/api/projects/{p}/progress/?state=todo&limit={PAGE}",
        "progress, filter needs review": f"/api/projects/{p}/progress/?state=review&limit={PAGE}",
        "images, first page": f"/api/projects/{p}/images/?limit={PAGE}",
        "members": f"/api/projects/{p}/members/",
        "assignments, a middle page": f"/api/projects/{p}/assignments/?limit=100&offset={middle}",
    }


def _measure(base: str, made: Made, repeats: int) -> dict[str, Stats]:
    results: dict[str, list[float]] = {name: [] for name in _paths(made)}
    results["queue/next (a new set)"] = []
    results["review/next"] = []
    for _ in range(repeats):
        for name, path in _paths(made).items():
            status, ms, _ = _request(base, path, made.token)
            assert status == 200, (name, status)
            results[name].append(ms)
    # Each annotator takes sets one after the other: the queue finds the
    # first image with room past the 60% already worked on.
    for n in range(repeats):
        token = made.annotator_tokens[n % len(made.annotator_tokens)]
        path = f"/api/projects/{made.project_id}/queue/next/"
        status, ms, body = _request(base, path, token, "POST")
        assert status == 200, status
        results["queue/next (a new set)"].append(ms)
        assignment = json.loads(body)
        submit = f"/api/assignments/{assignment['id']}/submit/"
        _request(base, submit, token, "POST")
        status, ms, _ = _request(
            base, f"/api/projects/{made.project_id}/review/next/", made.token, "POST"
        )
        results["review/next"].append(ms)
    return {name: Stats.of(values) for name, values in results.items()}


def _table(rows: dict[int, dict[str, Stats]], repeats: int) -> Table:
    small, big = SIZES
    table = Table(
        title=f"Project pages: {small:,} against {big:,} images, {MEMBERS} members (SQLite, HTTP)",
        columns=[
            "request", f"p50 ms ({small:,})", f"max ms ({small:,})",
            f"p50 ms ({big:,})", f"max ms ({big:,})", "p50 ratio",
        ],
    )  # fmt: skip
    for name in rows[big]:
        a, b = rows[small][name], rows[big][name]
        table.add(name, a.p50, a.max, b.p50, b.max, b.p50 / a.p50 if a.p50 else float("nan"))
    table.notes.append(
        f"{repeats} requests each, interleaved; overlap 2 and review on; 60% of the images have "
        "two sets in mixed states. Progress pages carry the state counts of the whole project."
    )
    return table


def _queries_table(made: Made) -> Table:
    """SQL queries per request, for a page of 10 and of 100: no query per image."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from backend.projects.models import Project

    owner = Project.objects.get(pk=made.project_id).created_by
    client = APIClient()
    client.force_authenticate(owner)
    table = Table(
        title=f"SQL queries per request ({made.images:,} images)",
        columns=["request", "page of 10", "page of 100"],
    )
    for name, template in (
        ("progress", "/api/projects/{p}/progress/?limit={n}"),
        ("images", "/api/projects/{p}/images/?limit={n}"),
        ("assignments", "/api/projects/{p}/assignments/?limit={n}"),
    ):
        counts = []
        for n in (10, 100):
            with CaptureQueriesContext(connection) as captured:
                response = client.get(
                    template.format(p=made.project_id, n=n), HTTP_HOST="127.0.0.1"
                )
            assert response.status_code == 200
            counts.append(len(captured.captured_queries))
        table.add(name, *counts)
    return table
