"""The work queue in real Chromium: a teacher, two students and a reviewer,
each in a browser context of their own. The teacher makes an invitation
link on the project page and the two students sign up through it; the
teacher sets overlap 2, blind and review on the project page.

Each student takes Start annotating, draws a polygon on their own set and
submits; neither sees the other's masks; the reviewer returns one set with a
comment pinned to a point; its student gets it back first, sees the comment,
fixes it and submits again; the reviewer accepts both sets. The two sets
share no object, so the image's consensus is disputed: the reviewer
recomputes it from the editor's dispute panel with a quorum of one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import Page, expect

from backend.annotations.models import Assignment, AssignmentComment, Instance
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from tests.browser.crowd import Person, consensus_of, crowd
from tests.browser.test_loop import PASSWORD, log_in, screen_xy, snap
from tests.conftest import shared_data
from tests.live import LiveApp, browser_marks, live_app_fixture  # noqa: F401

pytestmark = browser_marks(300)

SET_URL = re.compile(r"/images/(\d+)/\?assignment=(\d+)$")
COMMENT = "The nucleus at the pin is missing."


@pytest.fixture(name="people")
def people_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Person]]:
    """ana, ben, rita and tom, each in a browser context of their own."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's loop
    with crowd(("ana", "ben", "rita", "tom")) as found:
        yield found


def a_class() -> tuple[Project, list[Image]]:
    """Two images; teacher tom and reviewer rita (students join by link); default workflow."""
    teacher = User.objects.create_user("tom", password=PASSWORD)
    project = Project.objects.create(name="Class", created_by=teacher)
    Membership.objects.create(project=project, user=teacher, role=Membership.Role.OWNER)
    for username, role in (("rita", "reviewer"),):
        user = User.objects.create_user(username, password=PASSWORD)
        Membership.objects.create(project=project, user=user, role=role)
    Label.objects.create(project=project, name="nucleus", color="#ff00ff", order=0)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    files = [SimpleUploadedFile(f"field-{n}.tif", data) for n in (1, 2)]
    images = image_upload(project=project, user=teacher, files=files)
    return project, sorted(images, key=lambda image: image.pk)


# --- steps ------------------------------------------------------------------


def invite(page: Page, app: LiveApp, project: Project) -> str:
    """The teacher makes a link for annotators, for a class of 30: its URL."""
    page.goto(f"{app.url}projects/{project.pk}/")
    card = page.locator("#invitations-card")
    card.locator("select[name=role]").select_option("annotator")
    card.locator("input[name=max_uses]").fill("30")
    card.locator("button[type=submit]").click()
    link = card.locator(".invitation-url")
    expect(link).to_have_count(1)
    return link.input_value()


def sign_up(page: Page, app: LiveApp, link: str, username: str, project: Project) -> None:
    """A student opens the link, signs up, and lands on the project as a member."""
    page.goto(link)
    expect(page.locator("#join-role")).to_contain_text("annotator")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("#signup-form button[type=submit]")
    page.wait_for_url(f"{app.url}projects/{project.pk}/")
    expect(page.locator(".whoami span")).to_have_text(username)


def take(person: Person, app: LiveApp, project: Project, button: str) -> tuple[int, int]:
    """Click Start annotating or Review next on the project page: (image, assignment)."""
    page = person.page
    page.goto(f"{app.url}projects/{project.pk}/")
    return follow(page, button)


def follow(page: Page, selector: str) -> tuple[int, int]:
    """Click `selector` and land on the editor of another set."""
    leaving = page.url
    page.click(selector)
    return on_set(page, leaving)


def on_set(page: Page, leaving: str = "") -> tuple[int, int]:
    """The editor on a set (another than the one at `leaving`), ready: (image id, assignment id)."""
    page.wait_for_url(lambda url: SET_URL.search(url) is not None and url != leaving)
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#work-bar")).to_be_visible()
    match = SET_URL.search(page.url)
    assert match is not None
    return int(match[1]), int(match[2])


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('body[data-ready="true"]')


def polygon(page: Page, vertices: list[tuple[float, float]]) -> None:
    """Draw a polygon (L), close it with Enter, and wait until it is saved."""
    rows = page.locator("#instance-list tr[data-instance-id]")
    before = rows.count()
    page.keyboard.press("l")
    for x, y in vertices:
        page.mouse.click(*screen_xy(page, x, y))
    page.keyboard.press("Enter")
    expect(rows).to_have_count(before + 1)
    expect(page.locator("#save-state")).to_have_text("All changes saved")


def set_instances(page: Page, app: LiveApp, image: int, assignment: int) -> Any:
    return page.request.get(f"{app.url}api/images/{image}/instances/?assignment={assignment}")


LEFT = [(60.0, 60.0), (140.0, 60.0), (100.0, 130.0)]
RIGHT = [(300.0, 300.0), (400.0, 300.0), (350.0, 400.0)]
FIX = [(200.0, 200.0), (260.0, 200.0), (230.0, 260.0)]
PIN = (230.0, 230.0)


def test_two_students_and_a_reviewer_go_through_the_queue(
    live_app: LiveApp, people: dict[str, Person]
) -> None:
    project, (first, second) = a_class()
    ana, ben, rita, tom = (people[name].page for name in ("ana", "ben", "rita", "tom"))
    for username, page in (("rita", rita), ("tom", tom)):
        log_in(page, live_app, username)

    # Tom invites the class by link; Ana and Ben sign up through it.
    link = invite(tom, live_app, project)
    for username, page in (("ana", ana), ("ben", ben)):
        sign_up(page, live_app, link, username, project)
    joined = Membership.objects.filter(project=project, role="annotator")
    assert sorted(joined.values_list("user__username", flat=True)) == ["ana", "ben"]

    # Tom sets the workflow: two annotators per image, review, blind, no uploads by students.
    tom.goto(f"{live_app.url}projects/{project.pk}/")
    form = tom.locator("#workflow-form")
    expect(form.locator("input[name=overlap]")).to_have_value("1")
    form.locator("input[name=overlap]").fill("2")
    form.locator("input[name=review]").check()
    form.locator("input[name=blind]").check()
    form.locator("input[name=annotators_upload]").uncheck()
    form.locator("button[type=submit]").click()
    expect(form.locator(".done")).to_have_text("Workflow saved.")
    expect(tom.locator("#work-summary")).to_have_text(
        "Each image gets 2 annotators; a reviewer checks each set, blind."
    )
    project.refresh_from_db()
    assert (project.overlap, project.review, project.blind) == (2, True, True)
    assert project.annotators_upload is False

    # A student's project page: no upload, no proposals, no review, no workflow.
    ana.goto(f"{live_app.url}projects/{project.pk}/")
    expect(ana.locator("#image-filters [data-state=todo] .count")).to_have_text("2")
    expect(ana.locator("#upload")).to_be_hidden()
    expect(ana.locator("#propose-all")).to_be_hidden()
    expect(ana.locator("#review-next")).to_have_count(0)
    expect(ana.locator("#workflow-form")).to_have_count(0)

    # Ana takes the first image, draws, and submits: the queue gives her the second.
    image, ana_set = take(people["ana"], live_app, project, "#start-annotating")
    assert image == first.pk
    expect(ana.locator("#set-status")).to_have_text("in progress")
    polygon(ana, LEFT)
    assert follow(ana, "#submit-next")[0] == second.pk
    snap(ana, "work-ana-next")

    # Ben gets the first image too (overlap 2), in a set of his own: Ana's mask is not there.
    image, ben_set = take(people["ben"], live_app, project, "#start-annotating")
    assert (image, ben_set != ana_set) == (first.pk, True)
    expect(ben.locator("#instance-list tr[data-instance-id]")).to_have_count(0)
    assert set_instances(ben, live_app, first.pk, ana_set).status == 404  # blind
    polygon(ben, RIGHT)
    assert page_instance_ids(ben) == ids_in(ben_set)
    assert follow(ben, "#submit-next")[0] == second.pk
    assert set_instances(ana, live_app, first.pk, ben_set).status == 404

    # His submitted set waits for review: it opens read-only, and says so when he edits.
    open_page(ben, f"{live_app.url}images/{first.pk}/?assignment={ben_set}")
    notice = ben.locator("#read-only-notice")
    expect(notice).to_have_text(
        "Read only. You submitted this set: it waits for review and can no longer be changed."
    )
    expect(ben.locator("#submit-next")).to_have_count(0)
    ben.keyboard.press("l")
    for x, y in FIX:
        ben.mouse.click(*screen_xy(ben, x, y))
    ben.keyboard.press("Enter")
    expect(ben.locator("#editor-error")).to_contain_text("You submitted this set")
    expect(ben.locator("#instance-list tr[data-instance-id]")).to_have_count(1)
    # Without a set, a blind project's curated set is not his to see.
    open_page(ben, f"{live_app.url}images/{first.pk}/")
    expect(notice).to_have_text(
        "Read only. This project is blind: annotators see only their own sets."
    )

    # Rita reviews Ana's set (the oldest submitted): she sees Ana's mask only,
    # and returns it with a comment pinned to a point.
    image, reviewed = take(people["rita"], live_app, project, "#review-next")
    assert (image, reviewed) == (first.pk, ana_set)
    expect(rita.locator("#instance-list tr[data-instance-id]")).to_have_count(1)
    assert page_instance_ids(rita) == ids_in(ana_set)
    rita.click("#return-set")
    rita.fill("#return-comment", COMMENT)
    rita.click("#pin-point")
    rita.mouse.click(*screen_xy(rita, *PIN))
    expect(rita.locator("#pin-note")).to_have_text("Pinned at (230, 230).")
    snap(rita, "work-rita-return")
    assert follow(rita, "#return-form button[type=submit]") == (
        first.pk,
        ben_set,
    )  # the next submitted set
    comment = AssignmentComment.objects.get(assignment_id=ana_set)
    assert (comment.text, comment.x, comment.y) == (
        COMMENT,
        pytest.approx(230, abs=1),
        pytest.approx(230, abs=1),
    )

    # Ana's Start annotating brings the returned set first, with the comment and its pin.
    image, back = take(people["ana"], live_app, project, "#start-annotating")
    assert (image, back) == (first.pk, ana_set)
    expect(ana.locator("#set-status")).to_have_text("returned: see the comments")
    expect(ana.locator("#comment-list li")).to_have_count(1)
    expect(ana.locator("#comment-list li .comment-text")).to_have_text(COMMENT)
    assert ana.evaluate("window.maskroom.workBar.pins.comments.length") == 1
    expect(ana.locator("#instance-list tr[data-instance-id]")).to_have_count(1)
    polygon(ana, FIX)
    assert follow(ana, "#submit-next")[0] == second.pk
    assert Assignment.objects.get(pk=ana_set).status == Assignment.Status.SUBMITTED

    # Rita accepts Ben's set (still open on her page), then Ana's, and nothing is left.
    assert follow(rita, "#accept-set") == (first.pk, ana_set)
    expect(rita.locator("#instance-list tr[data-instance-id]")).to_have_count(2)
    rita.click("#accept-set")
    # The two sets share no object: the image's consensus (made as the last set
    # is accepted, in the background) is disputed, and is her next review, if
    # it was made by the time she asked; then nothing waits.
    rita.wait_for_url(re.compile(rf"/projects/{project.pk}/\?done=review$|/images/{first.pk}/$"))
    statuses = set(Assignment.objects.filter(image=first).values_list("status", flat=True))
    assert statuses == {Assignment.Status.ACCEPTED}
    record = consensus_of(first.pk)
    assert (record.sets, record.disputed) == (2, True)
    rita.goto(f"{live_app.url}images/{first.pk}/")
    rita.wait_for_selector('body[data-ready="true"]')
    expect(rita.locator("#dispute-panel h2")).to_have_text("Disputed image")
    # She recomputes it with a quorum of one: every object of either set stands.
    rita.click("#dispute-panel .recompute summary")
    rita.fill("#recompute-form input[name=quorum]", "1")
    rita.click("#recompute")
    expect(rita.locator("#dispute-panel h2")).to_have_text("People's sets")
    expect(rita.locator("#instance-list tr[data-instance-id]")).to_have_count(3)
    record.refresh_from_db()
    assert (record.quorum, record.disputed, record.computed_by.username) == (1, False, "rita")
    rita.goto(f"{live_app.url}projects/{project.pk}/")
    rita.click("#review-next")
    expect(rita.locator("#work-status")).to_have_text("Nothing waits for review.")

    # The project page counts the first image done.
    done = rita.locator('#image-filters [data-state="done"] .count')
    expect(done).to_have_text("1")
    expect(rita.locator(f'.image-card[data-image-id="{first.pk}"] .progress')).to_have_text(
        "2 of 2 sets · 0 submitted · 2 accepted"
    )


def page_instance_ids(page: Page) -> set[int]:
    rows = page.locator("#instance-list tr[data-instance-id]")
    return {int(row.get_attribute("data-instance-id") or 0) for row in rows.all()}


def ids_in(assignment: int) -> set[int]:
    return set(Instance.objects.filter(assignment_id=assignment).values_list("id", flat=True))
