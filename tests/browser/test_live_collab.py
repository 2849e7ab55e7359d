"""Working together in real Chromium, across two web processes that share
the Redis channel layer (as a deployment with several behind a proxy has):
ana's editor is served by one, ben's by the other. Each sees the other in
the presence line; what ana draws appears in ben's editor without a reload,
ben's relabel and delete in ana's; vera, a viewer, follows it all (and is
seen following); the proposals ben asks for appear in ana's editor when the
worker is done; and when ben leaves, ana sees him go."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import Locator, Page, expect

from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from tests.browser.crowd import Person, crowd
from tests.browser.test_loop import PASSWORD, log_in, screen_xy
from tests.browser.test_work_queue import open_page, polygon
from tests.conftest import shared_data
from tests.live import LiveApp, browser_marks, live_app_fixture, live_web_add  # noqa: F401

pytestmark = browser_marks(240)

TRIANGLE = [(60.0, 60.0), (140.0, 60.0), (100.0, 130.0)]


@pytest.fixture(name="people")
def people_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Person]]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's loop
    with crowd(("ana", "ben", "vera")) as found:
        yield found


def a_lab() -> Image:
    """Ana and ben, owners of a direct project (both edit the curated set), and vera, a viewer."""
    ana = User.objects.create_user("ana", password=PASSWORD)
    ben = User.objects.create_user("ben", password=PASSWORD)
    vera = User.objects.create_user("vera", password=PASSWORD)
    project = Project.objects.create(name="Lab", created_by=ana)
    for person in (ana, ben):
        Membership.objects.create(project=project, user=person, role=Membership.Role.OWNER)
    Membership.objects.create(project=project, user=vera, role=Membership.Role.VIEWER)
    Label.objects.create(project=project, name="nucleus", color="#ff00ff", order=0)
    Label.objects.create(project=project, name="debris", color="#00ffff", order=1)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    [image] = image_upload(project=project, user=ana, files=[SimpleUploadedFile("f.tif", data)])
    return image


def rows(page: Page) -> Locator:
    return page.locator("#instance-list tr[data-instance-id]")


def test_two_people_on_two_web_processes_see_each_others_work(
    live_app: LiveApp, people: dict[str, Person], tmp_path
) -> None:
    image = a_lab()
    other_web = live_web_add(live_app, logs=tmp_path / "live-logs")
    ana, ben, vera = (people[name].page for name in ("ana", "ben", "vera"))
    for name, person in people.items():
        log_in(person.page, live_app, name)
    # The session cookie is the host's: both processes take it.
    open_page(ana, f"{live_app.url}images/{image.pk}/")
    open_page(ben, f"{other_web}images/{image.pk}/")
    open_page(vera, f"{live_app.url}images/{image.pk}/")

    expect(ana.locator("#presence .present")).to_have_text(["ben", "vera"])
    expect(ben.locator("#presence .present")).to_have_text(["ana", "vera"])
    expect(vera.locator("#presence .present")).to_have_text(["ana", "ben"])

    # Ana draws: it appears in ben's editor, served by the other process, and in vera's.
    polygon(ana, TRIANGLE)
    expect(rows(ben)).to_have_count(1)
    made = int(rows(ana).first.get_attribute("data-instance-id") or 0)
    expect(ben.locator(f'#instance-list tr[data-instance-id="{made}"]')).to_have_count(1)
    expect(vera.locator(f'#instance-list tr[data-instance-id="{made}"]')).to_have_count(1)

    # Ben relabels it as debris (select, key 2), then deletes it: ana sees both.
    ben.keyboard.press("v")
    ben.mouse.click(*screen_xy(ben, 100.0, 80.0))
    ben.wait_for_function("id => window.maskroom.instances.selected.has(id)", arg=made)
    ben.keyboard.press("2")
    expect(ana.locator(f'#instance-list tr[data-instance-id="{made}"]')).to_contain_text("debris")
    ben.keyboard.press("Delete")
    expect(rows(ana)).to_have_count(0)
    expect(rows(vera)).to_have_count(0)
    # What ana was told is what the server has: no stale copy left to save back.
    expect(ana.locator("#save-state")).to_have_text("All changes saved")

    # Ben asks the worker for proposals: ana's editor shows the job running
    # and, when it is done, the proposals, without a reload.
    ben.locator("#propose").click()
    expect(ana.locator("#propose")).to_be_disabled()
    expect(ana.locator("body")).not_to_have_attribute("data-proposals", "0", timeout=90_000)
    expect(ana.locator("#propose")).to_be_enabled()
    assert int(ana.locator("body").get_attribute("data-proposals") or 0) > 10

    ben.close()
    expect(ana.locator("#presence .present")).to_have_text(["vera"])
    vera.close()
    expect(ana.locator("#presence")).to_be_hidden()
