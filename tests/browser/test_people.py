"""People and labels in real Chromium: an owner makes an invitation link, a
visitor signs up through it and lands on the project as a member; the owner
adds a class from a pasted CSV and downloads its passwords; the labels
editor adds a label and deletes one in use by merging it."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from playwright.sync_api import expect

from backend.annotations.models import Instance
from backend.images.models import Image
from backend.projects.models import Label, Membership, Project
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401

pytestmark = browser_marks(180)

PASSWORD = "people-password-1"


def owner_and_project() -> tuple[User, Project]:
    # The live servers check passwords with the default hasher.
    owner = User.objects.create(
        username="petra", password=make_password(PASSWORD, hasher="pbkdf2_sha256")
    )
    project = Project.objects.create(name="Histology 101", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Label.objects.create(project=project, name="nucleus", color="#ff00ff", order=0)
    Label.objects.create(project=project, name="cell", color="#00ff00", order=1)
    return owner, project


def log_in(browser: BrowserPage, app: LiveApp, username: str) -> None:
    page = browser.page
    page.goto(f"{app.url}accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(app.url)


def test_a_visitor_signs_up_through_a_link_and_lands_on_the_project(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    _, project = owner_and_project()
    page = browser_page.page
    log_in(browser_page, live_app, "petra")
    page.goto(f"{live_app.url}projects/{project.pk}/")
    card = page.locator("#invitations-card")
    card.locator("select[name=role]").select_option("annotator")
    card.locator("input[name=max_uses]").fill("30")
    card.locator("button[type=submit]").click()
    url_field = card.locator(".invitation-url")
    expect(url_field).to_have_count(1)
    link = url_field.input_value()
    assert "/join/" in link
    expect(card.locator("#invitation-list")).to_contain_text("0 of 30 uses")

    page.context.clear_cookies()
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Join Histology 101")
    expect(page.locator("#join-role")).to_contain_text("annotator")
    page.fill("input[name=username]", "student1")
    page.fill("input[name=password1]", "a-long-pass-1")
    page.fill("input[name=password2]", "a-long-pass-1")
    page.click("#signup-form button[type=submit]")

    page.wait_for_url(f"{live_app.url}projects/{project.pk}/")
    expect(page.locator(".whoami span")).to_have_text("student1")
    expect(page.locator("#member-list li[data-username=student1]")).to_contain_text("annotator")
    expect(page.locator("#invitations-card")).to_have_count(0)  # not an owner
    student = User.objects.get(username="student1")
    assert Membership.objects.get(project=project, user=student).role == "annotator"
    assert not browser_page.errors, browser_page.errors


def test_an_owner_adds_a_class_and_edits_the_labels(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    owner, project = owner_and_project()
    image = Image.objects.create(
        project=project, name="cells.png", original_path="x/o.png", planes_path="x/p.npy",
        display_path="x/d.png", format="png", width=8, height=6, dtype="uint8",
        uploaded_by=owner,
    )  # fmt: skip
    cell = project.labels.get(name="cell")
    Instance.objects.create(
        image=image, label=cell, rle={"size": [6, 8], "counts": "0"}, area=0, bbox=[0, 0, 0, 0]
    )
    page = browser_page.page
    log_in(browser_page, live_app, "petra")
    page.goto(f"{live_app.url}projects/{project.pk}/")

    bulk = page.locator("#bulk-card")
    bulk.locator("textarea[name=csv]").fill("username,role\nana,annotator\nben,viewer\n")
    bulk.locator("button[type=submit]").click()
    expect(bulk.locator("#bulk-passwords tbody tr")).to_have_count(2)
    with page.expect_download() as download_info:
        bulk.locator("#bulk-download").click()
    saved = tmp_path / "passwords.csv"
    download_info.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0] == "username,password" and [line.split(",")[0] for line in lines[1:]] == [
        "ana", "ben",
    ]  # fmt: skip
    expect(page.locator("#member-list li[data-username=ben]")).to_have_count(1)

    labels = page.locator("#labels-card")
    labels.locator("#label-add input[name=name]").fill("mitosis")
    labels.locator("#label-add button").click()
    expect(labels.locator(".label-row")).to_have_count(3)
    cell_row = labels.locator(f".label-row[data-label-id='{cell.pk}']")
    cell_row.get_by_role("button", name="Delete").click()
    expect(labels.locator(".error")).to_contain_text("used by 1 instance")
    cell_row.locator(".merge-picker select").select_option(label="mitosis")
    cell_row.get_by_role("button", name="Merge and delete").click()
    expect(labels.locator(".label-row")).to_have_count(2)
    assert Instance.objects.get(image=image).label.name == "mitosis"
    assert not browser_page.errors, browser_page.errors
