"""A large image in real Chromium while only its overview is embedded.

The worker stores a large image's shrunk overview first and marks the
embedding `coarse` (clickable), then computes the native tiles and marks it
`ready` (tests/backend/segmentation/live/test_coarse_first.py has the worker's order and the
consumer). Here the editor's side: it says that clicks work at reduced
resolution, takes a click and shows its mask, and follows the embedding to
`ready` without a reload. The live worker embeds the nuclei image; the test
then holds the row at `coarse`, as the worker leaves it between the two
steps, since the classical engine installed in tests does not tile.
"""

from __future__ import annotations

import time

import tifffile
from playwright.sync_api import expect

from backend.segmentation.models import Embedding
from tests.browser.test_loop import (
    decode,
    interior_point,
    iou,
    isolated_nuclei,
    screen_xy,
    wait_for_mask,
)
from tests.browser.test_project_panel import log_in, person, project_with_nuclei
from tests.conftest import shared_data
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401

pytestmark = browser_marks(240, array_warning=True)

EMBEDDING_TIMEOUT_S = 90


def embedded(image_id: int) -> Embedding:
    """The image's embedding once the live worker has computed it."""
    deadline = time.monotonic() + EMBEDDING_TIMEOUT_S
    while time.monotonic() < deadline:
        row = Embedding.objects.filter(image_id=image_id).first()
        if row is not None and row.status in (Embedding.Status.READY, Embedding.Status.FAILED):
            assert row.status == Embedding.Status.READY, row.error
            return row
        time.sleep(0.5)
    raise AssertionError("the live worker did not embed the image in time")


def test_a_coarse_embedding_takes_clicks_and_the_editor_follows_it_to_ready(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    owner, annotator = person("petra"), person("ali")
    project = project_with_nuclei(owner, annotator)
    image = project.images.get()
    row = embedded(image.pk)
    Embedding.objects.filter(pk=row.pk).update(status=Embedding.Status.COARSE)
    labels = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    [target] = isolated_nuclei(labels, 1)

    log_in(browser_page, live_app, "ali")
    page = browser_page.page
    page.goto(f"{live_app.url}images/{image.pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    banner = page.locator("#status-banner")
    expect(banner).to_have_attribute("data-status", "coarse")
    expect(banner).to_contain_text("reduced resolution")

    page.mouse.click(*screen_xy(page, *interior_point(labels == target)))
    mask = wait_for_mask(page, 1)
    proposed = decode(mask["rle"])
    assert proposed.shape == labels.shape and mask["area"] == int(proposed.sum()) > 0
    assert iou(proposed, labels == target) >= 0.5
    expect(page.locator("#editor-error")).to_have_text("")

    Embedding.objects.filter(pk=row.pk).update(status=Embedding.Status.READY)
    expect(banner).to_have_attribute("data-status", "ready")
    page.keyboard.press("Escape")  # a fresh object on the complete embedding
    page.mouse.click(*screen_xy(page, *interior_point(labels == target)))
    assert iou(decode(wait_for_mask(page, 2)["rle"]), labels == target) >= 0.5
    assert browser_page.errors == []
