"""The permission matrix of docs/api.md, table-driven: every project URL, every
method, every role, plus an outsider (404, as if nothing existed) and an
anonymous client (401/403). A role the table allows gets through (any answer
but 401, 403 or 404: a 400 for a body it did not like, a 409 for a rule such
as "keep an owner" are its own business); a role it does not allow gets 403
and changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from PIL import Image as PILImage
from pycocotools import mask as coco_mask

from backend.annotations.models import Assignment, Instance
from backend.datasets.models import Export
from backend.evaluations.models import EngineEvaluation
from backend.images.models import Image
from backend.projects.models import Invitation, Label, Membership, Project
from backend.projects.permissions import ROLES
from backend.propagation.models import PropagationJob
from backend.proposals.models import ProposalJob
from backend.quality.models import ImageConsensus, SetScore
from backend.segmentation.models import SegmentationModel
from backend.training.models import ModelVersion, TrainingJob
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

ALL = frozenset(ROLES)
WRITERS = frozenset({"owner", "reviewer", "annotator"})
OWNER = frozenset({"owner"})
LEADS = frozenset({"owner", "reviewer"})
NOBODY: frozenset[str] = frozenset()

# (method, URL template, JSON body or "file", the roles allowed). {p} project,
# {i} image, {n} an instance the owner drew, {j} a proposal job, {x} a member
# to remove (an annotator other than the caller), {c} an invitation link's
# code, {l} a label no instance uses, {g} a scored gold set, {e} an export.
MATRIX: list[tuple[str, str, object, frozenset[str]]] = [
    ("get", "/api/projects/{p}/", None, ALL),
    ("patch", "/api/projects/{p}/", {"name": "Renamed"}, OWNER),
    ("get", "/api/projects/{p}/members/", None, ALL),
    ("post", "/api/projects/{p}/members/", {"username": "oscar", "role": "viewer"}, OWNER),
    ("patch", "/api/projects/{p}/members/{x}/", {"role": "viewer"}, OWNER),
    ("delete", "/api/projects/{p}/members/{x}/", None, OWNER),
    ("post", "/api/projects/{p}/members/bulk/", {"members": [{"username": "newbie"}]}, OWNER),
    ("get", "/api/projects/{p}/invitations/", None, OWNER),
    ("post", "/api/projects/{p}/invitations/", {"role": "viewer", "max_uses": 5}, OWNER),
    ("delete", "/api/projects/{p}/invitations/{c}/", None, OWNER),
    ("post", "/api/projects/{p}/labels/", {"name": "debris"}, OWNER),
    ("patch", "/api/labels/{l}/", {"name": "renamed", "color": "#123456"}, OWNER),
    ("delete", "/api/labels/{l}/", None, OWNER),
    ("post", "/api/projects/{p}/leave/", None, ALL),
    ("get", "/api/projects/{p}/images/", None, ALL),
    ("post", "/api/projects/{p}/images/", "file", WRITERS),
    ("get", "/api/images/{i}/", None, ALL),
    ("get", "/api/images/{i}/display.png", None, ALL),
    ("get", "/api/images/{i}/tiles/0/0/0.bin", None, ALL),
    ("delete", "/api/images/{i}/", None, OWNER),
    ("get", "/api/projects/{p}/display/", None, ALL),
    ("put", "/api/projects/{p}/display/", {"channels": [{"visible": True}]}, WRITERS),
    ("delete", "/api/projects/{p}/display/", None, WRITERS),
    ("get", "/api/projects/{p}/channel-mapping/", None, ALL),
    ("patch", "/api/projects/{p}/channel-mapping/", {"mapping": [0, 0, 0]}, OWNER),
    ("get", "/api/images/{i}/instances/", None, ALL),
    ("post", "/api/images/{i}/instances/", "instance", WRITERS),
    ("get", "/api/instances/{n}/", None, ALL),
    ("get", "/api/instances/{n}/history/", None, ALL),
    ("patch", "/api/instances/{n}/", {"label": "cell"}, WRITERS),
    ("post", "/api/instances/{n}/accept/", None, WRITERS),
    ("post", "/api/instances/{n}/restore/", None, WRITERS),
    ("delete", "/api/instances/{n}/", None, OWNER),  # someone else's instance
    ("get", "/api/projects/{p}/export/?format=coco", None, ALL),
    ("post", "/api/images/{i}/proposals/", None, LEADS),
    ("post", "/api/images/{i}/propagate/", "propagate", WRITERS),
    ("get", "/api/propagation-jobs/{q}/", None, ALL),
    ("get", "/api/projects/{p}/proposals/", None, ALL),
    ("post", "/api/projects/{p}/proposals/", None, LEADS),
    ("get", "/api/proposal-jobs/{j}/", None, ALL),
    ("get", "/api/projects/{p}/evaluations/", None, ALL),
    ("post", "/api/projects/{p}/evaluations/", {"split": "all"}, LEADS),
    ("get", "/api/evaluations/{u}/", None, ALL),  # {u}: an evaluation
    ("post", "/api/projects/{p}/queue/next/", None, WRITERS),
    ("post", "/api/projects/{p}/review/next/", None, LEADS),
    ("get", "/api/projects/{p}/assignments/", None, ALL),
    ("get", "/api/projects/{p}/progress/", None, ALL),
    # {a}: the set of another annotator ("extra"), in progress.
    ("get", "/api/assignments/{a}/", None, WRITERS),
    ("get", "/api/images/{i}/instances/?assignment={a}", None, WRITERS),
    ("post", "/api/assignments/{a}/submit/", None, NOBODY),  # its annotator only
    ("post", "/api/assignments/{a}/skip/", {"reason": "blurred"}, NOBODY),
    ("post", "/api/assignments/{a}/activity/", {"seconds": 1}, NOBODY),
    ("post", "/api/assignments/{a}/accept/", None, LEADS),
    ("post", "/api/assignments/{a}/return/", {"comment": "fix"}, LEADS),
    ("get", "/api/images/{i}/agreement/", None, LEADS),
    ("post", "/api/images/{i}/consensus/", {}, LEADS),  # 400: no finished set yet
    ("get", "/api/images/{i}/consensus/", None, LEADS),
    ("post", "/api/images/{i}/consensus/resolve/", None, LEADS),
    # {g}: "extra"'s submitted set of a gold image, scored (a course with feedback).
    ("get", "/api/assignments/{g}/reference/", None, LEADS),
    ("patch", "/api/images/{i}/", {"gold": True}, OWNER),
    ("patch", "/api/images/{i}/", {"complete": True}, WRITERS),  # a direct project
    ("get", "/api/projects/{p}/quality/", None, LEADS),
    ("get", "/api/projects/{p}/exports/", None, ALL),
    ("post", "/api/projects/{p}/exports/", {"format": "coco"}, ALL),
    # {e}: an export the owner started; its zip holds what she may see.
    ("get", "/api/exports/{e}/", None, LEADS),
    ("get", "/api/exports/{e}/download/", None, LEADS),  # 409: not written yet
    ("delete", "/api/exports/{e}/", None, LEADS),
    ("get", "/api/projects/{p}/splits/", None, ALL),
    ("patch", "/api/projects/{p}/splits/", {"seed": 3}, OWNER),
    ("post", "/api/projects/{p}/imports/", "file", WRITERS),  # 400: no format
    ("get", "/api/projects/{p}/training/", None, ALL),
    ("post", "/api/projects/{p}/training/", {"kind": "pixel-classifier"}, OWNER),  # 400: 1 image
    # {t}: a queued training job; {v}: the project's trained version 1.
    ("get", "/api/training/{t}/", None, ALL),
    ("post", "/api/training/{t}/cancel/", None, OWNER),
    ("get", "/api/projects/{p}/models/", None, ALL),
    ("post", "/api/projects/{p}/models/{v}/adopt/", None, OWNER),
    ("get", "/api/projects/{p}/models/{v}/checkpoint/", None, LEADS),
]

# A person's set that a role may not see is a 404 to it, as if it did not exist.
HIDDEN = {
    template: frozenset({"viewer"})
    for _, template, _, _ in MATRIX
    if "{a}" in template or "{g}" in template
} | {
    template: frozenset({"annotator", "viewer"})
    for _, template, _, _ in MATRIX
    if "{e}" in template
}

PERSONAS = (*ROLES, "outsider", "anonymous")


@dataclass
class World:
    project: Project
    image: Image
    instance: Instance
    rle: dict
    people: dict[str, User]
    ids: dict[str, object]


def _png() -> io.BytesIO:
    buffer = io.BytesIO()
    PILImage.fromarray(np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)).save(buffer, "PNG")
    buffer.seek(0)
    buffer.name = "cells.png"
    return buffer


@pytest.fixture
def world(project: Project, owner: User, outsider: User) -> World:
    people = {"owner": owner, "outsider": outsider}
    for role in ("reviewer", "annotator", "viewer"):
        people[role] = User.objects.create_user(f"the-{role}", password="pw-123456789")
        Membership.objects.create(project=project, user=people[role], role=role)
    extra = User.objects.create_user("extra", password="pw-123456789")
    Membership.objects.create(project=project, user=extra, role="annotator")
    client = client_for(owner)
    response = client.post(f"/api/projects/{project.pk}/images/", {"file": _png()})
    assert response.status_code == 201, response.json()
    image = Image.objects.get(pk=response.json()["images"][0]["id"])
    mask = np.zeros((48, 64), dtype=np.uint8, order="F")
    mask[10:20, 5:30] = 1
    rle = {"size": [48, 64], "counts": coco_mask.encode(mask)["counts"].decode()}
    body = {"label": "nucleus", "rle": rle}
    response = client.post(f"/api/images/{image.pk}/instances/", body, format="json")
    assert response.status_code == 201, response.json()
    instance = Instance.objects.get(pk=response.json()["id"])
    job = ProposalJob.objects.create(project=project, image=image, created_by=owner)
    assignment = Assignment.objects.create(image=image, annotator=extra)
    invitation = Invitation.objects.create(
        code="the-link", project=project, role="viewer", created_by=owner
    )
    spare = Label.objects.create(project=project, name="spare", order=2)
    ImageConsensus.objects.create(
        image=image, method="majority", iou=0.5, quorum=2, sets=3, instances=1,
        disputed_clusters=1, disputed=True,
    )  # fmt: skip
    ids = {
        "p": project.pk, "i": image.pk, "n": instance.pk, "j": job.pk, "x": "extra",
        "a": assignment.pk, "c": invitation.code, "l": spare.pk,
        "g": _scored_gold_set(project, image, extra).pk,
        "e": Export.objects.create(project=project, created_by=owner, format="coco").pk,
        "t": TrainingJob.objects.create(project=project, kind="pixel-classifier").pk,
        "q": PropagationJob.objects.create(project=project, image=image, instance=instance,
                                           object_key="k", direction="up").pk,
        "v": _trained_version(project).number,
        "u": EngineEvaluation.objects.create(project=project, model_name="classical",
                                             engine_key="classical-1").pk,
    }  # fmt: skip
    return World(project, image, instance, rle, people, ids)


def _trained_version(project: Project) -> ModelVersion:
    path = Path(settings.MODELS_ROOT) / "trained.skops"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    model = SegmentationModel.objects.create(
        project=project, name="p-pixels-j1", arch="classical", checkpoint_path=str(path),
        sha256=hashlib.sha256(b"weights").hexdigest(),
    )  # fmt: skip
    return ModelVersion.objects.create(project=project, number=1, kind="pixel-classifier",
                                       model=model)  # fmt: skip


def _scored_gold_set(project: Project, like: Image, annotator: User) -> Assignment:
    Project.objects.filter(pk=project.pk).update(feedback=True)
    gold = Image.objects.create(
        project=project, name="gold.png", original_path="x", planes_path="x", display_path="x",
        format="png", width=like.width, height=like.height, dtype="uint8", gold=True,
        uploaded_by=like.uploaded_by,
    )  # fmt: skip
    done = Assignment.objects.create(image=gold, annotator=annotator, status="submitted")
    SetScore.objects.create(assignment=done, f1_gold=0.5, pq_gold=0.4)
    return done


def _request(world: World, persona: str, method: str, template: str, body: object):
    client = client_for(world.people.get(persona))
    url = template.format(**world.ids)
    if body == "file":
        return client.post(url, {"file": _png()})
    if body == "instance":
        body = {"label": "cell", "rle": world.rle}
    if body == "propagate":  # refused for what the image is (a plain PNG), past the permission
        body = {"instance": world.instance.pk, "direction": "both"}
    call = getattr(client, method)
    return call(url, body, format="json") if body is not None else call(url)


def _state() -> tuple:
    """What a refused request must leave as it was."""
    return (
        Image.objects.count(),
        Instance.all_objects.filter(deleted_at=None).count(),
        sorted(Membership.objects.values_list("user__username", "role")),
        sorted(Label.objects.values_list("name", "color", "order")),
        sorted(Invitation.objects.values_list("code", "revoked")),
    )


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(
    ("method", "template", "body", "allowed"),
    MATRIX,
    ids=[f"{method} {template}" for method, template, _, _ in MATRIX],
)
def test_the_matrix_holds(
    world: World, persona: str, method: str, template: str, body: object, allowed: frozenset
) -> None:
    before = _state()
    response = _request(world, persona, method, template, body)
    code = response.status_code
    if persona == "anonymous":
        assert code in (401, 403), (persona, code)
    elif persona == "outsider":
        assert code == 404, (persona, code)
    elif persona in allowed:
        assert code not in (401, 403, 404), (persona, code, response.content[:300])
    elif persona in HIDDEN.get(template, ()):
        assert code == 404, (persona, code, response.content[:300])
    else:
        assert code == 403, (persona, code, response.content[:300])
        assert response.json()["detail"].startswith("Only "), response.json()
    if code in (401, 403, 404):
        assert _state() == before
        world.project.refresh_from_db()
        assert world.project.name == "Nuclei"


def test_the_matrix_names_every_project_url() -> None:
    """A new endpoint must join the matrix (and docs/api.md)."""
    from django.urls import get_resolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    outside_projects = {
        "api/auth/token/",
        "api/projects/",
        "api/health/",
        "api/models/",
        "api/stacks/<int:stack_id>/",  # tests/backend/images/test_stacks.py
        # Whoever holds the link joins, an outsider above all:
        # tests/backend/projects/test_invitations.py.
        "api/join/<str:code>/",
    }
    covered = {
        template.split("?")[0].replace("{g}", "{a}").replace("{q}", "{j}")
        for _, template, _, _ in MATRIX
    }
    for route in walk(get_resolver().url_patterns):
        if not route.startswith("api/") or route in outside_projects:
            continue
        shape = "/" + route
        for name, key in (
            ("<int:project_id>", "{p}"),
            ("<int:image_id>", "{i}"),
            ("<int:instance_id>", "{n}"),
            ("<int:job_id>", "{j}"),
            ("<str:username>", "{x}"),
            ("<int:assignment_id>", "{a}"),
            ("<str:code>", "{c}"),
            ("<int:label_id>", "{l}"),
            ("<int:export_id>", "{e}"),
            ("<int:training_id>", "{t}"),
            ("<int:number>", "{v}"),
            ("<int:evaluation_id>", "{u}"),
            ("<str:level>/<str:tx>/<str:ty>", "0/0/0"),
        ):
            shape = shape.replace(name, key)
        assert shape in covered, f"{route} is not in the permission matrix"


# The consumer reads the database from its own threads: the rows must be committed.
@pytest.mark.django_db(transaction=True)
def test_a_viewer_may_not_prompt_over_the_websocket(world: World) -> None:
    from channels.testing import WebsocketCommunicator
    from django.test import Client

    from backend.asgi import application
    from tests.ws_fixtures import HOST, ORIGIN

    browser = Client()
    browser.force_login(world.people["viewer"])
    cookie = (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())

    async def run() -> dict[str, object]:
        url = f"/ws/images/{world.image.pk}/"
        communicator = WebsocketCommunicator(application, url, headers=[ORIGIN, HOST, cookie])
        await communicator.connect(timeout=10)
        await communicator.send_json_to({"type": "prompt", "request_id": 9, "points": [[2, 2, 1]]})
        while (message := await communicator.receive_json_from(timeout=10))["type"] != "error":
            pass
        await communicator.disconnect()
        return message

    # Connected (to follow the image), but the prompt is refused.
    refused = asyncio.run(run())
    assert refused["request_id"] == 9 and "viewers" in str(refused["message"])
