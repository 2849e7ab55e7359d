"""Stacks in real Chromium: a time-lapse uploaded through the project page
shows as one card; in the editor the t slider opens another plane, keeping
the zoom and pan, and what is accepted there is saved on that plane only.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import tifffile
from django.contrib.auth.models import User
from PIL import Image as PILImage
from playwright.sync_api import Page, expect
from scipy import ndimage

from backend.images.models import Image, ImageStack
from tests.browser.test_loop import PASSWORD, log_in, snap
from tests.conftest import shared_data
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401

pytestmark = browser_marks(180)

EMBEDDING_TIMEOUT_MS = 90_000
TIMELAPSE = "nuclei_timelapse/images.tif"


def upload(page: Page, relative: str) -> None:
    """Create a project and upload a file of ../shared/data through the pages."""
    page.fill("#project-create input[name=name]", "Stacks")
    page.fill("#project-create input[name=labels]", "nucleus")
    page.click("#project-create button[type=submit]")
    page.wait_for_url(re.compile(r"/projects/\d+/$"))
    page.set_input_files("#upload input[name=file]", str(shared_data(relative)))
    page.click("#upload button[type=submit]")


def wait_ready(page: Page, image_id: int) -> None:
    page.wait_for_url(re.compile(rf"/images/{image_id}/$"))
    page.wait_for_selector('body[data-ready="true"]')
    assert int(page.evaluate("document.body.dataset.imageId")) == image_id


def canvas_pixels(page: Page) -> np.ndarray:
    """The middle of the viewer in a screenshot (clear of the overlays at its edges)."""
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    shot = np.asarray(PILImage.open(io.BytesIO(page.screenshot())).convert("RGB"))
    x0, y0 = int(box["x"] + box["width"] / 4), int(box["y"] + box["height"] / 4)
    x1, y1 = int(box["x"] + box["width"] * 3 / 4), int(box["y"] + box["height"] * 3 / 4)
    return shot[y0:y1, x0:x1].astype(np.int16)


def next_frames(page: Page) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def view_of(page: Page) -> dict[str, float]:
    view: dict[str, float] = page.evaluate(
        "() => { const v = window.maskroom.viewer;"
        " return {scale: v.scale, offsetX: v.offsetX, offsetY: v.offsetY}; }"
    )
    return view


def move_slider(page: Page, axis: str, value: int) -> None:
    """Drop the slider at `value` as a mouse drag would: input events, then change."""
    page.evaluate(
        "([axis, value]) => { const s = document.getElementById(`stack-${axis}`);"
        " s.value = String(value); s.dispatchEvent(new Event('input', {bubbles: true}));"
        " s.dispatchEvent(new Event('change', {bubbles: true})); }",
        [axis, value],
    )


def isolated_nucleus(labels: np.ndarray) -> tuple[float, float]:
    """(x, y) deep inside a mid-sized nucleus away from the border."""
    areas = np.bincount(labels.ravel())
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or not 60 <= areas[index] <= 600:
            continue
        ys, xs = box
        if min(ys.start, xs.start) < 10 or max(ys.stop, xs.stop) > labels.shape[0] - 10:
            continue
        depth = ndimage.distance_transform_edt(np.pad(labels == index, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        return float(x) + 0.5, float(y) + 0.5
    raise AssertionError("no isolated nucleus in the frame")


def instance_images(page: Page, app: LiveApp, image_ids: list[int]) -> dict[int, int]:
    counts = {}
    for image_id in image_ids:
        response = page.request.get(f"{app.url}api/images/{image_id}/instances/")
        assert response.ok, response.text()
        body = response.json()
        counts[image_id] = len(body["results"] if isinstance(body, dict) else body)
    return counts


def test_the_t_slider_opens_another_plane_and_work_stays_on_it(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    User.objects.create_user("tess", password=PASSWORD)
    page = browser_page.page
    log_in(page, live_app, "tess")
    upload(page, TIMELAPSE)

    # The project page: one card for the six planes.
    expect(page.locator("#upload .done")).to_have_text("Uploaded 1 image (6 planes).")
    card = page.locator(".image-card")
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".stack-count")).to_have_text("stack of 6 planes (t 6)")
    expect(card.locator("a.name")).to_have_text("images.tif")
    snap(page, "stack-project")
    stack = ImageStack.objects.get()
    ids = list(stack.planes.order_by("t").values_list("id", flat=True))

    card.locator("a.name").click()
    wait_ready(page, ids[0])
    expect(page.locator("#stack-controls")).to_be_visible()
    expect(page.locator("#stack-t")).to_be_visible()
    expect(page.locator("#stack-z")).to_be_hidden()
    expect(page.locator("#stack-t")).to_have_value("0")
    expect(page.locator("#stack-t-value")).to_have_text("0 / 5")

    # Zoom in so the view differs from "fit", then look at frame 0.
    canvas = page.locator("#viewer").bounding_box()
    assert canvas is not None
    page.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_function("() => window.maskroom.viewer.userMoved")
    next_frames(page)  # the wheel's last zoom is drawn
    view = view_of(page)
    before = canvas_pixels(page)
    snap(page, "stack-t0")

    move_slider(page, "t", 3)
    wait_ready(page, ids[3])
    expect(page.locator("#stack-t")).to_have_value("3")
    expect(page.locator("#stack-t-value")).to_have_text("3 / 5")
    assert view_of(page) == pytest.approx(view)
    after = canvas_pixels(page)
    snap(page, "stack-t3")
    assert after.shape == before.shape and after.std() > 5
    changed = np.abs(after - before).max(axis=2) > 24
    assert changed.mean() > 0.05, "frame 3 looks like frame 0"

    # Accept an instance on frame 3: it belongs to that plane only.
    expect(page.locator("#status-banner")).to_have_attribute(
        "data-status", "ready", timeout=EMBEDDING_TIMEOUT_MS
    )
    page.keyboard.press("f")  # fit, so the whole frame is on screen
    x, y = isolated_nucleus(tifffile.imread(shared_data("nuclei_timelapse/labels.tif"))[3])
    xy = page.evaluate("([x, y]) => window.maskroom.viewer.imageToScreen(x, y)", [x, y])
    page.mouse.click(xy["x"], xy["y"])
    page.wait_for_function("() => window.maskroom.promptSession.mask?.area > 0", timeout=20_000)
    page.keyboard.press("Enter")
    expect(page.locator("#instance-list tr[data-instance-id]")).to_have_count(1)
    page.wait_for_function(
        "id => fetch(`/api/images/${id}/instances/`).then(r => r.json())"
        ".then(b => (b.results ?? b).length === 1)",
        arg=ids[3],
    )
    assert instance_images(page, live_app, [ids[0], ids[3]]) == {ids[0]: 0, ids[3]: 1}
    assert Image.objects.get(pk=ids[3]).instances.count() == 1

    # The keyboard steps on, and the slider keeps the focus on the next plane.
    page.focus("#stack-t")
    page.keyboard.press("ArrowRight")
    wait_ready(page, ids[4])
    expect(page.locator("#stack-t")).to_be_focused()
    expect(page.locator("#instance-list tr[data-instance-id]")).to_have_count(0)
    assert browser_page.errors == []


def test_the_z_slider_of_a_hyperstack_keeps_t(live_app: LiveApp, browser_page: BrowserPage) -> None:
    User.objects.create_user("zoe", password=PASSWORD)
    page = browser_page.page
    log_in(page, live_app, "zoe")
    upload(page, "multidim/tzcyx_5d_uint16.tiff")  # T2 x Z3, two channels
    card = page.locator(".image-card")
    expect(card.locator(".stack-count")).to_have_text("stack of 6 planes (t 2 \u00d7 z 3)")
    planes = {(i.t, i.z): i.pk for i in Image.objects.filter(stack__isnull=False)}
    assert sorted(planes) == [(t, z) for t in range(2) for z in range(3)]

    page.goto(f"{live_app.url}images/{planes[1, 0]}/")
    wait_ready(page, planes[1, 0])
    expect(page.locator("#stack-t")).to_be_visible()
    expect(page.locator("#stack-z")).to_be_visible()
    expect(page.locator("#stack-t")).to_have_value("1")
    move_slider(page, "z", 2)
    wait_ready(page, planes[1, 2])
    expect(page.locator("#stack-z")).to_have_value("2")
    expect(page.locator("#stack-t")).to_have_value("1")
    expect(page.locator("#stack-z-value")).to_have_text("2 / 2")
    snap(page, "stack-tz")
    assert browser_page.errors == []
