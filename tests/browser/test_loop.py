"""The annotation loop in real Chromium against the live app.

An annotator logs in, creates a project and uploads a real nuclei image
through the pages, waits for the worker to embed it, clicks a nucleus, sees
the mask, accepts it, finds it again after a reload, and exports COCO. The
engine is whatever is installed (the classical one when no SAM weights are).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import tifffile
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect
from pycocotools.coco import COCO
from scipy import ndimage

from tests.conftest import shared_data
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401
from worker.metrics import iou

pytestmark = browser_marks(180, array_warning=True)

PASSWORD = "annotator-password-1"
# Set MASKROOM_SCREENSHOTS=folder to keep a screenshot of each step.
SCREENSHOTS = os.environ.get("MASKROOM_SCREENSHOTS", "")
EMBEDDING_TIMEOUT_MS = 90_000
MASK_TIMEOUT_MS = 20_000


# --- what the test knows about the image ----------------------------------


def nuclei() -> tuple[Path, np.ndarray]:
    return shared_data("nuclei_dsb2018/image.tif"), tifffile.imread(
        shared_data("nuclei_dsb2018/labels.tif")
    )


def isolated_nuclei(labels: np.ndarray, count: int) -> list[int]:
    """Label ids of mid-sized nuclei away from the border and from other nuclei,
    the most typical first: fair targets for a single click."""
    areas = np.bincount(labels.ravel())
    boxes = ndimage.find_objects(labels)
    candidates = []
    for index, box in enumerate(boxes, start=1):
        if box is None or not 150 <= areas[index] <= 1500:
            continue
        ys, xs = box
        if ys.start < 8 or xs.start < 8 or ys.stop > labels.shape[0] - 8:
            continue
        if xs.stop > labels.shape[1] - 8:
            continue
        around = ndimage.binary_dilation(labels == index, iterations=4)
        if np.any((labels[around] != 0) & (labels[around] != index)):
            continue
        candidates.append(index)
    median = float(np.median([areas[i] for i in candidates]))
    candidates.sort(key=lambda i: (abs(areas[i] - median), i))
    assert len(candidates) >= count, "the image has too few isolated nuclei"
    return candidates[:count]


def interior_point(nucleus: np.ndarray) -> tuple[float, float]:
    """The pixel centre deepest inside the mask, (x, y) in image pixels."""
    depth = ndimage.distance_transform_edt(np.pad(nucleus, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return float(x) + 0.5, float(y) + 0.5


def decode(rle: dict[str, Any]) -> np.ndarray:
    compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(compressed).astype(bool)


# --- steps ------------------------------------------------------------------


def snap(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def log_in(page: Page, app: LiveApp, username: str) -> None:
    page.goto(f"{app.url}accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(app.url)


def project_with_uploaded_image(
    page: Page, app: LiveApp, image: Path, *, wait_until_ready: bool = True
) -> str:
    """Create a project and upload `image` through the pages; the project page URL."""
    page.fill("#project-create input[name=name]", "Nuclei, end to end")
    page.fill("#project-create input[name=labels]", "nucleus, debris")
    page.click("#project-create button[type=submit]")
    page.wait_for_url(re.compile(r"/projects/\d+/$"))
    page.set_input_files("#upload input[name=file]", str(image))
    page.click("#upload button[type=submit]")
    card = page.locator(".image-card")
    expect(card).to_have_count(1)
    if not wait_until_ready:
        return page.url
    # The list polls the API: the status changes without a reload.
    expect(card).to_have_attribute(
        "data-status", re.compile("ready|failed"), timeout=EMBEDDING_TIMEOUT_MS
    )
    assert card.get_attribute("data-status") == "ready", "the worker could not embed the image"
    expect(card.locator(".status")).to_have_text("ready")
    snap(page, "project")
    return page.url


def open_editor(page: Page) -> int:
    page.locator(".image-card a.name").click()
    page.wait_for_url(re.compile(r"/images/\d+/$"))
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#status-banner")).to_have_attribute(
        "data-status", "ready", timeout=EMBEDDING_TIMEOUT_MS
    )
    return int(page.evaluate("document.body.dataset.imageId"))


def screen_xy(page: Page, x: float, y: float) -> tuple[float, float]:
    xy = page.evaluate("([x, y]) => window.maskroom.viewer.imageToScreen(x, y)", [x, y])
    return xy["x"], xy["y"]


def wait_for_mask(page: Page, request_id: int) -> dict[str, Any]:
    """The mask the page holds once it answers request `request_id`."""
    page.wait_for_function(
        "id => { const m = window.maskroom.promptSession.mask; return m && m.requestId >= id; }",
        arg=request_id,
        timeout=MASK_TIMEOUT_MS,
    )
    mask: dict[str, Any] = page.evaluate(
        "() => { const m = window.maskroom.promptSession.mask;"
        " return {requestId: m.requestId, area: m.area, score: m.score, rle: m.rle}; }"
    )
    return mask


def check_zoom_and_pan(page: Page) -> None:
    """The wheel zooms about the pointer; middle-drag and Space+drag pan
    without prompting; F fits the image again."""
    x, y = screen_xy(page, 200, 300)
    page.mouse.move(x, y)
    scale = page.evaluate("window.maskroom.viewer.scale")
    page.mouse.wheel(0, -400)
    page.wait_for_function("s => window.maskroom.viewer.scale > s * 1.5", arg=scale)
    anchor = page.evaluate("([x, y]) => window.maskroom.viewer.screenToImage(x, y)", [x, y])
    assert abs(anchor["x"] - 200) < 1.5 and abs(anchor["y"] - 300) < 1.5
    page.mouse.down(button="middle")
    page.mouse.move(x + 60, y + 20, steps=4)
    page.mouse.up(button="middle")
    assert screen_xy(page, 200, 300) == pytest.approx((x + 60, y + 20), abs=1.5)
    page.keyboard.down("Space")
    page.mouse.down()
    page.mouse.move(x, y, steps=4)
    page.mouse.up()
    page.keyboard.up("Space")
    assert screen_xy(page, 200, 300) == pytest.approx((x, y), abs=1.5)
    assert page.evaluate("window.maskroom.promptSession.isEmpty")
    page.keyboard.press("f")
    page.wait_for_function("s => Math.abs(window.maskroom.viewer.scale - s) < 1e-6", arg=scale)


def labels_by_name(page: Page) -> dict[str, int]:
    buttons = page.locator("#label-picker .label-button")
    names = buttons.locator(".name").all_inner_texts()
    ids = [int(b.get_attribute("data-label-id") or 0) for b in buttons.all()]
    return dict(zip(names, ids, strict=True))


def instances_via_api(page: Page, app: LiveApp, image_id: int) -> list[dict[str, Any]]:
    # The editor saves in the background (store.js): what it shows is on the server once saved.
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=30_000)
    response = page.request.get(f"{app.url}api/images/{image_id}/instances/")
    assert response.ok, response.text()
    body = response.json()
    return list(body["results"] if isinstance(body, dict) else body)


# --- tests --------------------------------------------------------------------


def test_an_annotator_segments_accepts_reloads_and_exports_a_nucleus(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    image_path, labels = nuclei()
    [target] = isolated_nuclei(labels, 1)
    truth = labels == target
    User.objects.create_user("annie", password=PASSWORD)
    page = browser_page.page

    log_in(page, live_app, "annie")
    project_url = project_with_uploaded_image(page, live_app, image_path)
    expect(page.locator("#engine-name")).not_to_have_text("Checking…")
    image_id = open_editor(page)

    page.mouse.click(*screen_xy(page, *interior_point(truth)))
    mask = wait_for_mask(page, 1)
    proposed = decode(mask["rle"])
    assert proposed.shape == labels.shape
    assert mask["area"] == int(proposed.sum()) > 0
    assert iou(proposed, truth) >= 0.5, f"IoU {iou(proposed, truth):.2f} with nucleus {target}"
    expect(page.locator("#proposal")).to_have_attribute("data-area", str(mask["area"]))
    snap(page, "editor-proposal")

    page.keyboard.press("Enter")
    row = page.locator("#instance-list tr[data-instance-id]")
    expect(row).to_have_count(1)
    expect(row.locator("select.relabel")).to_have_value(re.compile(r"\d+"))
    expect(row).to_contain_text("annie")
    expect(page.locator("#proposal")).to_have_attribute("data-area", "0")
    [saved] = instances_via_api(page, live_app, image_id)
    assert saved["label"] == "nucleus" and saved["origin"] == "prompt"
    assert np.array_equal(decode(saved["rle"]), proposed)

    page.reload()
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#instance-list tr[data-instance-id]")).to_have_count(1)
    assert page.evaluate("window.maskroom.instances.items.size") == 1
    snap(page, "editor-reloaded")

    page.goto(project_url)
    with page.expect_download() as download_info:
        page.click("#export-link")
    export_path = tmp_path / "export.json"
    download_info.value.save_as(export_path)
    coco = COCO()
    coco.dataset = json.loads(export_path.read_text())
    coco.createIndex()
    [annotation] = coco.dataset["annotations"]
    assert coco.cats[annotation["category_id"]]["name"] == "nucleus"
    assert np.array_equal(coco.annToMask(annotation).astype(bool), decode(saved["rle"]))
    assert browser_page.errors == []


def test_zoom_pan_negative_points_boxes_relabel_and_delete(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    image_path, labels = nuclei()
    first, second = isolated_nuclei(labels, 2)
    User.objects.create_user("bruno", password=PASSWORD)
    page = browser_page.page
    log_in(page, live_app, "bruno")
    # Straight to the editor: its banner follows the embedding over the socket.
    project_with_uploaded_image(page, live_app, image_path, wait_until_ready=False)
    image_id = open_editor(page)
    check_zoom_and_pan(page)

    # A positive click, then a right-click on the background beside the nucleus.
    truth = labels == first
    page.mouse.click(*screen_xy(page, *interior_point(truth)))
    wait_for_mask(page, 1)
    ys, xs = np.nonzero(truth)
    outside = (float(xs.max()) + 3.5, float(ys.mean()))
    page.mouse.click(*screen_xy(page, *outside), button="right")
    mask = wait_for_mask(page, 2)
    refined = decode(mask["rle"])
    assert refined.sum() > 0
    assert not refined[int(outside[1]), int(outside[0])], "the negative point lies in the mask"
    snap(page, "editor-negative")
    points = page.evaluate("window.maskroom.promptSession.points")
    assert [p[2] for p in points] == [1, 0]

    page.keyboard.press("Escape")
    expect(page.locator("#proposal")).to_have_attribute("data-area", "0")
    assert page.evaluate("window.maskroom.promptSession.points.length") == 0

    # A box dragged around another nucleus.
    truth = labels == second
    ys, xs = np.nonzero(truth)
    page.mouse.move(*screen_xy(page, float(xs.min()) - 2, float(ys.min()) - 2))
    page.mouse.down()
    page.mouse.move(*screen_xy(page, float(xs.max()) + 3, float(ys.max()) + 3), steps=8)
    page.mouse.up()
    mask = wait_for_mask(page, 3)
    snap(page, "editor-box")
    boxed = decode(mask["rle"])
    assert iou(boxed, truth) >= 0.5, f"IoU {iou(boxed, truth):.2f} with nucleus {second}"
    assert page.evaluate("window.maskroom.promptSession.box") is not None

    # Key 2 picks the second label; the list relabels and deletes.
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    row = page.locator("#instance-list tr[data-instance-id]")
    expect(row).to_have_count(1)
    [saved] = instances_via_api(page, live_app, image_id)
    assert saved["label"] == "debris"
    row.locator("select.relabel").select_option(label="nucleus")
    expect(row.locator("select.relabel")).to_have_value(str(labels_by_name(page)["nucleus"]))
    page.wait_for_function(
        "id => fetch(`/api/images/${id}/instances/`).then(r => r.json())"
        ".then(list => list[0] && list[0].label === 'nucleus')",
        arg=image_id,
    )
    row.locator("button.danger").click()
    expect(row).to_have_count(0)
    assert instances_via_api(page, live_app, image_id) == []
    assert browser_page.errors == []
