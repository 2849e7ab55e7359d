"""Reviewing automatic proposals in the editor, in real Chromium against the
live app: the Propose button runs a job on the real worker, N selects the next
proposal, A accepts it and R rejects it; every check reads the server."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import expect

from backend.annotations.models import Instance
from tests.browser.test_tools import nuclei_labels, open_editor_with
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401

pytestmark = browser_marks(240)


def eventually(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_annotator_proposes_then_accepts_and_rejects_proposals(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    labels = nuclei_labels()
    curated = labels == int(labels[labels > 0][0])
    image, [kept] = open_editor_with(live_app, page, "rosa", [curated], wait_embedding=True)

    page.click("#propose")

    expect(page.locator("#propose-status")).to_contain_text("to review", timeout=180_000)
    proposed = Instance.objects.filter(image=image, state="proposed")
    count = proposed.count()
    assert count > 50, count
    assert int(page.locator("body").get_attribute("data-proposals") or 0) == count
    # The curated instance is untouched and no proposal duplicates it.
    kept.refresh_from_db()
    assert kept.state == "accepted" and kept.version == 1

    page.keyboard.press("n")
    first = page.evaluate("() => [...window.maskroom.instances.selected][0]")
    assert Instance.objects.get(pk=first).state == "proposed"
    page.keyboard.press("a")
    eventually(lambda: Instance.objects.get(pk=first).state == "accepted", "the accept")
    accepted = Instance.objects.get(pk=first)
    assert accepted.author is not None and accepted.author.username == "rosa"

    second = page.evaluate("() => [...window.maskroom.instances.selected][0]")
    assert second != first and Instance.objects.get(pk=second).state == "proposed"
    page.keyboard.press("r")
    eventually(lambda: not Instance.objects.filter(pk=second).exists(), "the reject")
    eventually(
        lambda: page.locator("body").get_attribute("data-proposals") == str(count - 2),
        "the proposal count",
    )
    assert Instance.objects.filter(image=image, state="proposed").count() == count - 2
