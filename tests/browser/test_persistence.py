"""Never lose work, in real Chromium against the live app: a 409 conflict
keeps the annotator's change until they choose, a dropped network or
WebSocket recovers without loss, and a reload shows everything saved, even
what was still waiting to be sent when the page was reloaded."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from PIL import Image as PILImage
from playwright.sync_api import Page, Route, expect
from pycocotools import mask as coco_mask

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.projects.models import Label, Membership, Project
from tests.conftest import client_for, shared_data
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401

pytestmark = browser_marks(180)

PASSWORD = "annotator-password-1"
SCREENSHOTS = os.environ.get("MASKROOM_SCREENSHOTS", "")
EMBEDDING_TIMEOUT_MS = 90_000
SAVE_TIMEOUT_MS = 40_000  # covers the store's longest backoff (15 s)
SIZE = 512  # the nuclei image is 512 x 512


def snap(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def square(x: int, y: int, w: int, h: int) -> dict[str, Any]:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[y : y + h, x : x + w] = 1
    encoded = coco_mask.encode(np.asfortranarray(mask))
    return {"size": [SIZE, SIZE], "counts": encoded["counts"].decode()}


def nuclei_image() -> tuple[User, User, Project, Image]:
    """Olivia's project with Annie in it, and the nuclei image uploaded."""
    owner = User.objects.create_user("olivia", password=PASSWORD)
    annie = User.objects.create_user("annie", password=PASSWORD)
    project = Project.objects.create(name="Nuclei", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    Membership.objects.create(project=project, user=annie, role=Membership.Role.ANNOTATOR)
    Label.objects.create(project=project, name="nucleus", color="#ff00ff", order=0)
    Label.objects.create(project=project, name="debris", color="#00ffff", order=1)
    with shared_data("nuclei_dsb2018/image.tif").open("rb") as file:
        response = client_for(owner).post(f"/api/projects/{project.pk}/images/", {"file": file})
    assert response.status_code == 201, response.json()
    image = Image.objects.get(pk=response.json()["images"][0]["id"])
    return owner, annie, project, image


def label(project: Project, name: str) -> Label:
    return Label.objects.get(project=project, name=name)


def open_editor(page: Page, app: LiveApp, image: Image, username: str = "annie") -> None:
    page.goto(f"{app.url}accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(app.url)
    page.goto(f"{app.url}images/{image.pk}/")
    page.wait_for_selector('body[data-ready="true"]')


def row(page: Page, instance_id: int | str):
    return page.locator(f'#instance-list tr[data-instance-id="{instance_id}"]')


def unsaved_rows(page: Page):
    """Rows of instances still under a local id (not saved yet)."""
    return page.locator('#instance-list tr[data-instance-id^="local-"]')


def expect_saved(page: Page) -> None:
    expect(page.locator("#save-state")).to_have_text("All changes saved", timeout=SAVE_TIMEOUT_MS)


def screen_xy(page: Page, x: float, y: float) -> tuple[float, float]:
    xy = page.evaluate("([x, y]) => window.maskroom.viewer.imageToScreen(x, y)", [x, y])
    return xy["x"], xy["y"]


def pixel(page: Page, x: float, y: float, tmp: Path) -> tuple[int, int, int]:
    """The colour on screen at image pixel (x, y)."""
    sx, sy = screen_xy(page, x, y)
    path = tmp / "screen.png"
    page.screenshot(path=str(path))
    with PILImage.open(path) as shot:
        rgb = np.asarray(shot.convert("RGB"))
    r, g, b = (int(v) for v in rgb[int(sy), int(sx)])
    return r, g, b


def create_in_editor(page: Page, label_id: int, rle: dict[str, Any]) -> str:
    """What Accept does with a mask: store.create; returns the (local) id."""
    instance_id: str = page.evaluate(
        "([labelId, rle]) => window.maskroom.store.create({ labelId, rle }).id", [label_id, rle]
    )
    return instance_id


def server_instance(instance_id: int) -> Instance:
    return Instance.all_objects.select_related("label").get(pk=instance_id)


# --- a 409 conflict -----------------------------------------------------------


def test_a_conflict_keeps_local_work_and_shows_both_versions(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    owner, annie, project, image = nuclei_image()
    nucleus = label(project, "nucleus")
    first_mask = square(40, 40, 30, 30)
    kept = instance_create(image=image, user=owner, label=nucleus, rle=first_mask)
    # Annie's own (only an owner deletes someone else's), which Olivia edits.
    given_up = instance_create(image=image, user=annie, label=nucleus, rle=square(300, 300, 20, 20))
    page = browser_page.page
    open_editor(page, live_app, image)
    expect_saved(page)
    expect(page.locator("#conflicts")).to_be_hidden()

    # Olivia changes both first; Annie's editor still holds version 1 of each.
    owner_client = client_for(owner)
    bigger = square(40, 40, 50, 50)
    for instance, change in ((kept, {"rle": bigger}), (given_up, {"label": "debris"})):
        url = f"/api/instances/{instance.pk}/"
        response = owner_client.patch(url, {**change, "version": 1}, format="json")
        assert response.status_code == 200

    row(page, kept.pk).locator("select").select_option(label="debris")
    row(page, given_up.pk).locator("button.danger").click()
    state = page.locator("#save-state")
    expect(state).to_have_attribute("data-state", "conflict", timeout=SAVE_TIMEOUT_MS)
    expect(state).to_have_text("Conflict: 2 instances changed on the server")

    # Both versions are shown: the local one is kept (in the list, filled on the
    # image), the server's is listed beside it and outlined on the image.
    expect(row(page, kept.pk).locator("select")).to_have_value(str(label(project, "debris").pk))
    expect(row(page, given_up.pk)).to_have_count(0)
    conflict = page.locator(f'#conflict-list li[data-instance-id="{kept.pk}"]')
    expect(conflict.locator(".conflict-side").nth(0)).to_contain_text("Yours")
    expect(conflict.locator(".conflict-side").nth(0)).to_contain_text("debris")
    expect(conflict.locator(".conflict-side").nth(0)).to_contain_text("900 px")
    expect(conflict.locator(".conflict-side").nth(1)).to_contain_text("nucleus")
    expect(conflict.locator(".conflict-side").nth(1)).to_contain_text("2500 px · v2")
    expect(conflict.locator(".conflict-side").nth(1)).to_be_visible()
    gone = page.locator(f'#conflict-list li[data-instance-id="{given_up.pk}"]')
    expect(gone.locator(".conflict-side").nth(0)).to_contain_text("deleted")
    expect(gone.locator(".conflict-side").nth(1)).to_contain_text("debris")
    snap(page, "persistence-conflict")
    # The server's larger square is outlined in white where the local one is not.
    outline = pixel(page, 89.5, 65.5, tmp_path)
    assert min(outline) > 200, f"no outline of the server's version: {outline}"

    conflict.locator("button.keep-mine").click()
    gone.locator("button.use-server").click()
    expect_saved(page)
    expect(page.locator("#conflicts")).to_be_hidden()
    assert min(pixel(page, 89.5, 65.5, tmp_path)) < 200, "the server's outline stayed"

    saved = server_instance(kept.pk)
    assert (saved.version, saved.label.name, saved.rle) == (3, "debris", first_mask)
    assert saved.area == 900
    assert server_instance(given_up.pk).deleted_at is None
    assert server_instance(given_up.pk).label.name == "debris"
    expect(row(page, given_up.pk).locator("select")).to_have_value(str(label(project, "debris").pk))
    history = client_for(owner).get(f"/api/instances/{kept.pk}/history/").json()
    assert [(h["action"], h["user"]) for h in history] == [
        ("create", "olivia"),
        ("update", "olivia"),
        ("update", "annie"),
    ]
    assert browser_page.errors == []


# --- a dropped connection -----------------------------------------------------


def test_a_dropped_network_and_websocket_recover_without_loss(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    image = nuclei_image()[3]
    page = browser_page.page
    open_editor(page, live_app, image)
    expect(page.locator("#status-banner")).to_have_attribute(
        "data-status", "ready", timeout=EMBEDDING_TIMEOUT_MS
    )

    page.mouse.click(*screen_xy(page, 256, 256))
    page.wait_for_function("() => window.maskroom.promptSession.mask !== null", timeout=30_000)
    proposed = page.evaluate("window.maskroom.promptSession.mask.rle")
    page.context.set_offline(True)
    page.keyboard.press("Enter")
    expect(page.locator("#save-state")).to_have_text(
        "Offline: 1 change waiting", timeout=SAVE_TIMEOUT_MS
    )
    expect(page.locator("#instance-list tr[data-instance-id]")).to_have_count(1)
    assert not Instance.objects.filter(image=image).exists()
    snap(page, "persistence-offline")

    page.context.set_offline(False)
    expect_saved(page)
    [saved] = Instance.objects.filter(image=image)
    assert (saved.rle["counts"], saved.label.name) == (proposed["counts"], "nucleus")
    expect(row(page, saved.pk)).to_have_count(1)

    # The WebSocket drops: the editor reconnects by itself and prompts work again.
    page.evaluate(
        "() => { window.droppedWs = window.maskroom.socket.ws; window.droppedWs.close(); }"
    )
    page.wait_for_function(
        "() => window.maskroom.socket.isOpen && window.maskroom.socket.ws !== window.droppedWs",
        timeout=30_000,
    )
    expect(page.locator("#status-banner")).to_have_attribute("data-status", "ready")
    page.mouse.click(*screen_xy(page, 100, 400))
    page.wait_for_function("() => window.maskroom.promptSession.mask !== null", timeout=30_000)
    page.keyboard.press("Enter")
    expect_saved(page)
    assert Instance.objects.filter(image=image).count() == 2
    assert browser_page.errors == []


# --- a reload -----------------------------------------------------------------


def block_writes(route: Route) -> None:
    """The server is unreachable for saves (reads still work, so the page loads)."""
    if route.request.method == "GET":
        route.continue_()
    else:
        route.abort("internetdisconnected")


def test_a_reload_shows_everything_saved_including_what_was_pending(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    owner, _, project, image = nuclei_image()
    nucleus, debris = label(project, "nucleus"), label(project, "debris")
    relabelled = instance_create(image=image, user=owner, label=nucleus, rle=square(20, 20, 9, 9))
    page = browser_page.page
    open_editor(page, live_app, image)
    create_in_editor(page, nucleus.pk, square(100, 100, 12, 12))
    expect_saved(page)
    expect(unsaved_rows(page)).to_have_count(0)

    page.route(re.compile(r"/api/"), block_writes)
    row(page, relabelled.pk).locator("select").select_option(label="debris")
    local_id = create_in_editor(page, debris.pk, square(200, 150, 16, 16))
    assert local_id.startswith("local-")
    expect(page.locator("#save-state")).to_have_text(
        "Offline: 2 changes waiting", timeout=SAVE_TIMEOUT_MS
    )

    page.reload()
    page.wait_for_selector('body[data-ready="true"]')
    # What was pending is still shown, and still waiting.
    expect(page.locator("#instance-list tr[data-instance-id]")).to_have_count(3)
    expect(row(page, relabelled.pk).locator("select")).to_have_value(str(debris.pk))
    expect(page.locator("#save-state")).to_have_text(
        "Offline: 2 changes waiting", timeout=SAVE_TIMEOUT_MS
    )
    assert server_instance(relabelled.pk).label == nucleus
    assert Instance.objects.filter(image=image).count() == 2
    snap(page, "persistence-reloaded-offline")

    page.unroute(re.compile(r"/api/"))
    expect_saved(page)
    expect(unsaved_rows(page)).to_have_count(0)
    assert server_instance(relabelled.pk).label == debris
    assert Instance.objects.filter(image=image).count() == 3
    assert Instance.objects.filter(image=image, label=debris, area=256).count() == 1

    page.reload()
    page.wait_for_selector('body[data-ready="true"]')
    rows = page.locator("#instance-list tr[data-instance-id]")
    expect(rows).to_have_count(3)
    ids = sorted(int(r.get_attribute("data-instance-id") or 0) for r in rows.all())
    assert ids == sorted(Instance.objects.filter(image=image).values_list("pk", flat=True))
    expect(row(page, relabelled.pk).locator("select")).to_have_value(str(debris.pk))
    expect(page.locator("#save-state")).to_have_text("All changes saved")
    stored = page.evaluate(f"localStorage.getItem('maskroom:pending:image:{image.pk}')")
    assert stored is None
    snap(page, "persistence-reloaded")
    assert browser_page.errors == []


# --- restoring a deleted instance -----------------------------------------------


def test_a_deleted_instance_is_restored_from_the_recently_deleted_list(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    owner, annie, project, image = nuclei_image()
    nucleus = label(project, "nucleus")
    gone = instance_create(image=image, user=annie, label=nucleus, rle=square(60, 60, 10, 10))
    instance_create(image=image, user=owner, label=nucleus, rle=square(200, 60, 10, 10))
    page = browser_page.page
    open_editor(page, live_app, image)

    row(page, gone.pk).locator("button.danger").click()
    expect(row(page, gone.pk)).to_have_count(0)
    expect_saved(page)
    assert server_instance(gone.pk).deleted_at is not None

    page.locator("#recently-deleted summary").click()
    entry = page.locator(f'#deleted-list li[data-instance-id="{gone.pk}"]')
    expect(entry).to_contain_text("nucleus")
    expect(entry).to_contain_text("100 px")
    snap(page, "persistence-recently-deleted")
    entry.locator("button.restore").click()
    expect(row(page, gone.pk)).to_have_count(1)
    expect_saved(page)
    expect(page.locator("#deleted-list")).to_contain_text("Nothing deleted.")
    restored = server_instance(gone.pk)
    assert (restored.deleted_at, restored.version) == (None, 3)
    assert restored.rle == square(60, 60, 10, 10)
    expect(page.locator("#instance-list tr[data-instance-id]")).to_have_count(2)
    assert browser_page.errors == []
