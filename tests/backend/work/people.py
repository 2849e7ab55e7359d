"""A class: a project with a teacher (owner), a reviewer, students and images
made directly in the database (the queue never reads pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.contrib.auth.models import User
from pycocotools import mask as coco_mask

from backend.images.models import Image
from backend.projects.models import Label, Membership, Project
from tests.conftest import client_for

SIZE = (48, 64)  # (height, width)


@dataclass
class Class:
    project: Project
    teacher: User
    reviewer: User
    students: list[User]
    images: list[Image]


def make_class(
    *, students: int = 2, images: int = 3, overlap: int = 1, review: bool = False,
    blind: bool = False, prefix: str = "",
) -> Class:  # fmt: skip
    teacher = User.objects.create_user(f"{prefix}teacher", password="pw-123456789")
    project = Project.objects.create(
        name="Class", created_by=teacher, overlap=overlap, review=review, blind=blind
    )
    Membership.objects.create(project=project, user=teacher, role="owner")
    reviewer = User.objects.create_user(f"{prefix}reviewer", password="pw-123456789")
    Membership.objects.create(project=project, user=reviewer, role="reviewer")
    Label.objects.create(project=project, name="cell", color="#00ff00", order=0)
    people = []
    for n in range(students):
        student = User.objects.create_user(f"{prefix}student{n}", password="pw-123456789")
        Membership.objects.create(project=project, user=student, role="annotator")
        people.append(student)
    made = [
        Image.objects.create(
            project=project,
            name=f"field-{n}.png",
            original_path="x",
            planes_path="x",
            display_path="x",
            format="png",
            width=SIZE[1],
            height=SIZE[0],
            dtype="uint8",
            uploaded_by=teacher,
        )
        for n in range(images)
    ]
    return Class(project, teacher, reviewer, people, made)


def rle(y0: int = 10, x0: int = 5, size: int = 10) -> dict:
    mask = np.zeros(SIZE, dtype=np.uint8, order="F")
    mask[y0 : y0 + size, x0 : x0 + size] = 1
    return {"size": list(SIZE), "counts": coco_mask.encode(mask)["counts"].decode()}


def take(user: User, project: Project) -> dict:
    """The user's next set from the queue (there must be one)."""
    response = client_for(user).post(f"/api/projects/{project.pk}/queue/next/")
    assert response.status_code == 200, response.content
    return response.json()


def nothing_left(user: User, project: Project) -> bool:
    response = client_for(user).post(f"/api/projects/{project.pk}/queue/next/")
    assert response.status_code in (200, 204), response.content
    return response.status_code == 204


def draw(user: User, assignment: dict, **where: int) -> dict:
    body = {"label": "cell", "rle": rle(**where), "assignment": assignment["id"]}
    response = client_for(user).post(
        f"/api/images/{assignment['image']}/instances/", body, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def call(user: User, assignment: dict, action: str, body: dict | None = None):
    return client_for(user).post(
        f"/api/assignments/{assignment['id']}/{action}/", body or {}, format="json"
    )
