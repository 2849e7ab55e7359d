"""The project page's model panel in real Chromium: switching the model,
proposals for all images with a progress bar, and the evaluation table."""

from __future__ import annotations

import io

import tifffile
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from playwright.sync_api import expect

from backend.annotations.models import Instance
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from backend.segmentation.compute import embedding_compute
from backend.segmentation.models import Embedding
from tests.conftest import shared_data
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401
from worker import rle

pytestmark = browser_marks(240)

PASSWORD = "panel-password-1"


def person(username: str) -> User:
    # The live servers check passwords with the default hasher.
    return User.objects.create(
        username=username, password=make_password(PASSWORD, hasher="pbkdf2_sha256")
    )


def log_in(browser: BrowserPage, app: LiveApp, username: str) -> None:
    page = browser.page
    page.goto(f"{app.url}accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(app.url)


def project_with_nuclei(owner: User, annotator: User) -> Project:
    project = Project.objects.create(name="Panel", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Membership.objects.create(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    Label.objects.create(project=project, name="nucleus", order=0)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    image_upload(project=project, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    return project


def test_proposals_for_all_images_show_progress_and_land_as_proposed(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    owner, annotator = person("petra"), person("ali")
    project = project_with_nuclei(owner, annotator)
    log_in(browser_page, live_app, "petra")  # owners and reviewers start proposals
    page = browser_page.page
    page.goto(f"{live_app.url}projects/{project.pk}/")

    page.click("#propose-all")

    expect(page.locator("#proposals-card")).to_have_attribute(
        "data-job-status", "done", timeout=180_000
    )
    assert "1 of 1 images" in page.locator("#propose-status").inner_text()
    proposed = Instance.objects.filter(image__project=project, state="proposed").count()
    assert proposed > 50, proposed
    assert f"{proposed} proposals" in page.locator("#propose-status").inner_text()


def test_the_owner_switches_the_model_and_annotators_cannot(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    owner, annotator = person("petra"), person("ali")
    project = project_with_nuclei(owner, annotator)
    page = browser_page.page

    log_in(browser_page, live_app, "ali")
    page.goto(f"{live_app.url}projects/{project.pk}/")
    expect(page.locator("#model-select")).to_be_disabled()
    expect(page.locator("#model-select")).to_have_value("classical")

    page.context.clear_cookies()
    log_in(browser_page, live_app, "petra")
    page.goto(f"{live_app.url}projects/{project.pk}/")
    select = page.locator("#model-select")
    expect(select).to_be_enabled()
    expect(select.locator("option")).to_have_count(1)  # only classical is installed
    page.evaluate(
        """() => { const s = document.getElementById('model-select');
        s.add(new Option('vit_z', 'vit_z')); s.value = 'vit_z';
        s.dispatchEvent(new Event('change')); }"""
    )
    error = page.locator("#model-card .error")
    expect(error).to_contain_text("vit_z")
    expect(select).to_have_value("classical")
    project.refresh_from_db()
    assert project.model_name == ""


def test_the_evaluation_table_lists_each_run(live_app: LiveApp, browser_page: BrowserPage) -> None:
    owner, annotator = person("petra"), person("ali")
    project = project_with_nuclei(owner, annotator)
    image = project.images.get()
    embedding = Embedding.objects.get(image=image)
    embedding_compute(embedding_id=embedding.pk)
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    label = project.labels.get()
    for value in [int(v) for v in sorted(set(labels.ravel().tolist())) if v][:5]:
        mask = labels == value
        ys, xs = mask.nonzero()
        crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        encoded = rle.encode_crop(crop, int(xs.min()), int(ys.min()), *labels.shape)
        area, bbox = rle.area_and_bbox(encoded)
        Instance.objects.create(image=image, label=label, rle=encoded, area=area, bbox=bbox)
    call_command("evaluate_engine", "--project", str(project.pk), "--json", stdout=io.StringIO())

    log_in(browser_page, live_app, "ali")
    page = browser_page.page
    page.goto(f"{live_app.url}projects/{project.pk}/")
    rows = page.locator("#evaluations tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    expect(cells.nth(0)).to_have_text("classical")
    expect(cells.nth(1)).to_have_text("1")  # images
    expect(cells.nth(2)).to_have_text("5")  # objects
    noc90 = float(cells.nth(4).inner_text())
    assert 1 <= noc90 <= 20
    expect(cells.nth(10)).to_have_text("\N{EN DASH}")  # the command does not propose
    expect(page.locator("#evaluations-empty")).to_be_hidden()
    expect(page.locator("#evaluation-form")).to_have_count(0)  # annotators do not start them
