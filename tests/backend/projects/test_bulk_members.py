"""Many accounts at once: JSON rows, CSV bodies and files, and
`manage.py add_members`; all rows are checked before anything is written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from backend.projects.bulk_members import MAX_BULK_MEMBERS
from backend.projects.models import Membership, Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def bulk(user: User, project: Project, rows: list[dict]):
    return client_for(user).post(
        f"/api/projects/{project.pk}/members/bulk/", {"members": rows}, format="json"
    )


def test_owner_adds_new_and_existing_people(
    project: Project, owner: User, member: User, outsider: User, settings
) -> None:
    rows = [
        {"username": "ana", "email": "ana@example.org", "role": "annotator"},
        {"username": "ben", "role": "viewer"},
        {"username": "oscar", "role": "reviewer"},  # an account, not yet a member
        {"username": "mateo", "role": "viewer"},  # a member: keeps annotator
    ]
    response = bulk(owner, project, rows)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [c["username"] for c in body["created"]] == ["ana", "ben"]
    assert body["existing"] == [
        {"username": "oscar", "role": "reviewer"},
        {"username": "mateo", "role": "annotator"},
    ]
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert roles == {
        "olivia": "owner", "mateo": "annotator", "ana": "annotator", "ben": "viewer",
        "oscar": "reviewer",
    }  # fmt: skip
    assert User.objects.get(username="ana").email == "ana@example.org"
    assert Membership.objects.get(project=project, user__username="ana").added_by == owner
    # The one-time password logs in (the server checks PBKDF2, as in production).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    password = body["created"][0]["password"]
    assert len(password) >= 14 and password != body["created"][1]["password"]
    assert Client().login(username="ana", password=password)


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ([{"username": "ana"}, {"username": "bad name!"}], "Row 2: 'bad name!' is not a valid"),
        ([{"username": "ana", "role": "boss"}], "Row 1: the role 'boss'"),
        ([{"username": "ana"}, {"username": "ANA"}], "Row 2: 'ANA' is also on row 1"),
        ([{"username": "ana", "email": "not-an-address"}], "Row 1: 'not-an-address'"),
        ([{"username": ""}], "Row 1: the username is missing"),
        ([], "The list is empty"),
    ],
)
def test_it_refuses_a_bad_row_and_writes_nothing(
    project: Project, owner: User, rows: list[dict], says: str
) -> None:
    users_before = User.objects.count()
    response = bulk(owner, project, rows)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(says), response.json()
    assert User.objects.count() == users_before
    assert project.memberships.count() == 2


def test_it_refuses_too_many_rows(project: Project, owner: User) -> None:
    rows = [{"username": f"s{n}"} for n in range(MAX_BULK_MEMBERS + 1)]
    assert bulk(owner, project, rows).status_code == 400
    assert not User.objects.filter(username="s0").exists()


def test_it_refuses_a_deactivated_account(project: Project, owner: User) -> None:
    User.objects.create_user("gone", password="pw-123456789", is_active=False)
    response = bulk(owner, project, [{"username": "new1"}, {"username": "gone"}])
    assert response.status_code == 400
    assert "Row 2" in response.json()["detail"] and "deactivated" in response.json()["detail"]
    assert not User.objects.filter(username="new1").exists()


def test_it_refuses_an_annotator(project: Project, member: User) -> None:
    response = bulk(member, project, [{"username": "ana", "role": "owner"}])
    assert response.status_code == 403
    assert not User.objects.filter(username="ana").exists()


def test_it_reads_a_csv_body(project: Project, owner: User) -> None:
    text = "username,role,email\nana,viewer,ana@example.org\n\nben,,\n"
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/bulk/", text, content_type="text/csv"
    )
    assert response.status_code == 201, response.json()
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert (roles["ana"], roles["ben"]) == ("viewer", "annotator")


def test_it_reads_a_csv_file_without_a_header(project: Project, owner: User) -> None:
    upload = SimpleUploadedFile("class.csv", b"\xef\xbb\xbfana,,reviewer\nben\n", "text/csv")
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/bulk/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    assert [c["username"] for c in response.json()["created"]] == ["ana", "ben"]


def test_a_bad_csv_line_is_named_by_its_line(project: Project, owner: User) -> None:
    text = "username,role\nana,viewer\n\nben,chief\n"
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/members/bulk/", text, content_type="text/csv"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Line 4: the role 'chief'")


def test_the_command_adds_people_and_prints_their_passwords(
    project: Project, owner: User, member: User, tmp_path: Path
) -> None:
    source = tmp_path / "class.csv"
    source.write_text("username,email,role\nana,ana@example.org,annotator\nmateo,,viewer\n")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "add_members", "--project", str(project.pk), "--csv", str(source),
        "--added-by", "olivia", stdout=out, stderr=err,
    )  # fmt: skip
    lines = out.getvalue().splitlines()
    assert lines[0] == "username,password" and lines[1].startswith("ana,")
    assert len(lines) == 2
    assert "1 accounts created, 1 existing" in err.getvalue()
    assert Membership.objects.get(project=project, user__username="ana").added_by == owner


def test_the_command_writes_the_passwords_to_a_file(project: Project, tmp_path: Path) -> None:
    source, target = tmp_path / "class.csv", tmp_path / "passwords.csv"
    source.write_text("ana\nben\n")
    call_command(
        "add_members", "--project", str(project.pk), "--csv", str(source), "--out", str(target),
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    assert [line.split(",")[0] for line in target.read_text().splitlines()] == [
        "username", "ana", "ben",
    ]  # fmt: skip


def test_the_command_refuses_a_bad_list_and_adds_nobody(project: Project, tmp_path: Path) -> None:
    source = tmp_path / "class.csv"
    source.write_text("ana\nb c\n")
    with pytest.raises(CommandError, match="Line 2"):
        call_command("add_members", "--project", str(project.pk), "--csv", str(source))
    assert not User.objects.filter(username="ana").exists()


def test_the_command_refuses_an_added_by_who_is_not_an_owner(
    project: Project, member: User, tmp_path: Path
) -> None:
    source = tmp_path / "class.csv"
    source.write_text("ana\n")
    with pytest.raises(CommandError, match="Only a project owner"):
        call_command(
            "add_members", "--project", str(project.pk), "--csv", str(source),
            "--added-by", "mateo",
        )  # fmt: skip
