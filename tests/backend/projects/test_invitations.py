"""Invitation links over the REST API: made, listed and revoked by owners,
used by whoever has the link, refused when expired, revoked or used up."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from backend.projects.invitations import invitation_join
from backend.projects.models import Invitation, Membership, Project
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def make_link(project: Project, owner: User, **body: object) -> dict:
    body = {"role": "annotator", **body}
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/invitations/", body, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_owner_makes_a_link(project: Project, owner: User) -> None:
    link = make_link(project, owner, role="reviewer", expires_in_days=7, max_uses=30)
    assert link["url"] == f"http://testserver/join/{link['code']}/"
    assert len(link["code"]) >= 20
    assert (link["role"], link["max_uses"], link["uses"]) == ("reviewer", 30, 0)
    assert link["created_by"] == "olivia"
    assert link["problem"] is None
    invitation = Invitation.objects.get(code=link["code"])
    assert invitation.expires_at is not None
    assert timedelta(days=6) < invitation.expires_at - timezone.now() <= timedelta(days=7)


def test_it_refuses_a_link_from_an_annotator(project: Project, member: User) -> None:
    response = client_for(member).post(
        f"/api/projects/{project.pk}/invitations/", {"role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{"role": "boss"}, {"role": "viewer", "expires_in_days": 0}, {"role": "viewer", "max_uses": 0}],
)
def test_it_refuses_a_bad_link(project: Project, owner: User, body: dict) -> None:
    response = client_for(owner).post(
        f"/api/projects/{project.pk}/invitations/", body, format="json"
    )
    assert response.status_code == 400
    assert not Invitation.objects.exists()


def test_owners_list_links_and_others_may_not(project: Project, owner: User, member: User) -> None:
    first = make_link(project, owner)
    second = make_link(project, owner, role="viewer")
    listed = client_for(owner).get(f"/api/projects/{project.pk}/invitations/").json()
    assert [link["code"] for link in listed] == [second["code"], first["code"]]
    assert client_for(member).get(f"/api/projects/{project.pk}/invitations/").status_code == 403


def test_a_user_joins_with_the_links_role(project: Project, owner: User, outsider: User) -> None:
    link = make_link(project, owner, role="reviewer")
    response = client_for(outsider).post(f"/api/join/{link['code']}/")
    assert response.status_code == 200
    assert response.json() == {"project": project.pk, "role": "reviewer"}
    membership = Membership.objects.get(project=project, user=outsider)
    assert (membership.role, membership.added_by) == ("reviewer", owner)
    assert Invitation.objects.get(code=link["code"]).uses == 1


def test_it_refuses_expired_code(project: Project, owner: User, outsider: User) -> None:
    link = make_link(project, owner, expires_in_days=1)
    Invitation.objects.filter(code=link["code"]).update(expires_at=timezone.now())
    response = client_for(outsider).post(f"/api/join/{link['code']}/")
    assert response.status_code == 410
    assert "expired" in response.json()["detail"]
    assert not Membership.objects.filter(project=project, user=outsider).exists()


def test_it_refuses_revoked_code(project: Project, owner: User, outsider: User) -> None:
    link = make_link(project, owner)
    revoke = client_for(owner).delete(f"/api/projects/{project.pk}/invitations/{link['code']}/")
    assert revoke.status_code == 204
    response = client_for(outsider).post(f"/api/join/{link['code']}/")
    assert response.status_code == 410
    assert "withdrawn" in response.json()["detail"]


def test_it_refuses_used_up_code(project: Project, owner: User, outsider: User) -> None:
    link = make_link(project, owner, max_uses=1)
    third = User.objects.create_user("thea", password="pw-123456789")
    assert client_for(outsider).post(f"/api/join/{link['code']}/").status_code == 200
    response = client_for(third).post(f"/api/join/{link['code']}/")
    assert response.status_code == 410
    assert "used" in response.json()["detail"]


def test_it_answers_an_unknown_code_with_404(outsider: User) -> None:
    assert client_for(outsider).post("/api/join/nothing-like-it/").status_code == 404


def test_an_anonymous_client_cannot_join(project: Project, owner: User) -> None:
    link = make_link(project, owner)
    assert client_for(None).post(f"/api/join/{link['code']}/").status_code in (401, 403)


def test_a_member_keeps_the_higher_role_and_uses_nothing(
    project: Project, owner: User, member: User
) -> None:
    viewer_link = make_link(project, owner, role="viewer", max_uses=1)
    response = client_for(member).post(f"/api/join/{viewer_link['code']}/")
    assert response.json()["role"] == "annotator"
    assert client_for(owner).post(f"/api/join/{viewer_link['code']}/").json()["role"] == "owner"
    assert Invitation.objects.get(code=viewer_link["code"]).uses == 0
    reviewer_link = make_link(project, owner, role="reviewer")
    assert client_for(member).post(f"/api/join/{reviewer_link['code']}/").json()["role"] == (
        "reviewer"
    )


def test_an_outsider_cannot_see_or_revoke_links(
    project: Project, owner: User, outsider: User
) -> None:
    link = make_link(project, owner)
    client = client_for(outsider)
    assert client.get(f"/api/projects/{project.pk}/invitations/").status_code == 404
    gone = client.delete(f"/api/projects/{project.pk}/invitations/{link['code']}/")
    assert gone.status_code == 404
    assert not Invitation.objects.get(code=link["code"]).revoked


@pytest.mark.django_db(transaction=True)
def test_concurrent_joins_never_exceed_max_uses(project: Project, owner: User) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    invitation = Invitation.objects.create(
        code="race", project=project, role="annotator", created_by=owner, max_uses=3
    )
    people = [User.objects.create_user(f"student{n}", password="pw-123456789") for n in range(8)]
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def join(person: User) -> None:
        barrier.wait()
        try:
            invitation_join(code="race", user=person)
            outcomes.append("joined")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=join, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    invitation.refresh_from_db()
    assert invitation.uses == 3
    assert outcomes.count("joined") == 3
    assert outcomes.count("InvitationGoneError") == 5
    assert Membership.objects.filter(project=project, role="annotator").count() == 1 + 3
