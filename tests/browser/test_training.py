"""The model learns the project, in real Chromium with the real worker: the
owner trains the pixel classifier from the project page, watches the curve
and the before and after table, switches back to the plain model, adopts the
trained version again from its table and clicks a nucleus with it."""

from __future__ import annotations

import re

import tifffile
from django.contrib.auth.models import User
from playwright.sync_api import expect

from backend.projects.models import Label, Membership, Project
from backend.segmentation.models import Embedding
from backend.segmentation.selectors import spec_for_model
from backend.training.models import ModelVersion
from tests.backend.training.conftest import upload_half
from tests.browser.test_loop import (
    EMBEDDING_TIMEOUT_MS,
    PASSWORD,
    decode,
    interior_point,
    isolated_nuclei,
    log_in,
    screen_xy,
    wait_for_mask,
)
from tests.conftest import shared_data
from tests.live import (  # noqa: F401
    BrowserPage,
    LiveApp,
    browser_marks,
    browser_page_fixture,
    live_app_fixture,
)
from worker.metrics import iou

pytestmark = browser_marks(240, array_warning=True)

JOB_TIMEOUT_MS = 150_000


def test_an_owner_trains_adopts_and_clicks_with_the_projects_model(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    owner = User.objects.create_user("olivia", password=PASSWORD)
    project = Project.objects.create(name="Nuclei", created_by=owner, model_name="classical")
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Label.objects.create(project=project, name="nucleus", order=0)
    upload_half(project, owner, "top.tif", slice(0, 256))
    bottom = upload_half(project, owner, "bottom.tif", slice(256, 512))

    page = browser_page.page
    log_in(page, live_app, "olivia")
    page.goto(f"{live_app.url}projects/{project.pk}/")
    card = page.locator("#training-card")
    expect(card).to_have_attribute("data-ready", "true")
    expect(card.locator("#versions-empty")).to_be_visible()
    card.locator("#training-start").click()
    expect(card).to_have_attribute("data-finished", re.compile(r"\d+"), timeout=JOB_TIMEOUT_MS)
    expect(card.locator("#training-status")).to_have_attribute("data-status", "done")
    expect(card.locator("#training-curve")).to_have_attribute("data-points", "4")
    expect(card.locator("#figures-before")).to_have_text("before: classical")
    expect(card.locator("#training-split")).to_contain_text(
        "Learns from 1 image, validated on 1 image"
    )
    noc = card.locator('#training-figures tr[data-figure="noc85"] td')
    expect(noc.nth(1)).to_contain_text("(better)")
    version = ModelVersion.objects.get(project=project)
    row = card.locator('#model-versions tr[data-version="1"]')
    expect(row.locator(".in-use")).to_have_text("in use")
    expect(page.locator("#model-select")).to_have_value(version.model.name)

    # Back to the plain model, then the trained version again from its row.
    page.locator("#model-select").select_option("classical")
    expect(page.locator("#model-hint")).to_contain_text("Now using classical")
    page.reload()
    adopt = card.locator('#model-versions tr[data-version="1"] button.adopt')
    adopt.click()
    expect(card.locator('#model-versions tr[data-version="1"] .in-use')).to_have_text("in use")
    expect(page.locator("#model-select")).to_have_value(version.model.name)

    # A click in the editor is answered by the trained model.
    page.goto(f"{live_app.url}images/{bottom.pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#status-banner")).to_have_attribute(
        "data-status", "ready", timeout=EMBEDDING_TIMEOUT_MS
    )
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))[256:]
    [target] = isolated_nuclei(labels, 1)
    truth = labels == target
    page.mouse.click(*screen_xy(page, *interior_point(truth)))
    mask = decode(wait_for_mask(page, 1)["rle"])
    assert iou(mask, truth) > 0.5  # one click; the figures above are the measure
    key = spec_for_model(version.model).key
    assert Embedding.objects.get(image=bottom, engine_key=key).status == "ready"

    # Saying that every object here is labelled (training's known background).
    toggle = page.locator("#labels-complete")
    expect(page.locator("#complete-toggle")).to_be_visible()
    expect(toggle).not_to_be_checked()
    toggle.check()
    expect(toggle).to_be_enabled()
    bottom.refresh_from_db()
    assert bottom.labels_complete
    page.reload()
    expect(page.locator("#labels-complete")).to_be_checked()
