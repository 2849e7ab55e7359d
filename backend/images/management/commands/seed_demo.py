"""`python manage.py seed_demo`: a demo account with a project to annotate.

Idempotent: the demo account is created once, with DEMO_PASSWORD (default
"demo-password"), and never changed again (a password its user set stays, a
deactivated account stays deactivated); a second run uploads only missing
images. Images go through the upload service, so their embeddings are
scheduled.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import transaction

from backend.common.demo import DEMO_USERNAME, demo_password
from backend.images.demo_data import demo_files
from backend.images.services import image_upload
from backend.projects.models import Project
from backend.projects.services import project_create

DEMO_PROJECT = "Demo: cells and nuclei"
DEMO_LABELS = ("nucleus", "cell")


class Command(BaseCommand):
    help = "Create the demo user, the demo project and its images (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        password = demo_password()
        user, made = demo_user_ensure(password=password)
        project, created = demo_project_ensure(user=user)
        names = demo_images_ensure(project=project, user=user)
        verb = "Created" if created else "Found"
        self.stdout.write(f"{verb} project {project.name!r} (id {project.pk}).")
        if names:
            self.stdout.write(f"Uploaded {len(names)} image(s): {', '.join(names)}.")
        else:
            self.stdout.write("All demo images were already there.")
        if made:
            self.stdout.write(self.style.SUCCESS(f"Log in as {DEMO_USERNAME} / {password}"))
        else:
            self.stdout.write(f"The {DEMO_USERNAME} account exists already: left as it is.")


def demo_user_ensure(*, password: str) -> tuple[AbstractBaseUser, bool]:
    """The demo user, created with `password` the first time only; (user, created)."""
    model = get_user_model()
    user = model.objects.filter(username=DEMO_USERNAME).first()
    if user is not None:
        return user, False
    return model.objects.create_user(username=DEMO_USERNAME, password=password), True


@transaction.atomic
def demo_project_ensure(*, user: AbstractBaseUser) -> tuple[Project, bool]:
    project = (
        Project.objects.filter(name=DEMO_PROJECT, memberships__user=user).order_by("id").first()
    )
    if project is not None:
        return project, False
    return project_create(user=user, name=DEMO_PROJECT, labels=list(DEMO_LABELS)), True


def demo_images_ensure(*, project: Project, user: AbstractBaseUser) -> list[str]:
    """Upload the demo images the project lacks (matched by name); their names."""
    present = set(project.images.values_list("name", flat=True))
    missing = [
        SimpleUploadedFile(name, content) for name, content in demo_files() if name not in present
    ]
    if missing:
        image_upload(project=project, user=user, files=missing)
    return [upload.name or "" for upload in missing]
