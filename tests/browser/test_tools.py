"""The editing tools in real Chromium against the live app (real web server,
real Celery worker, the classical engine): brush, eraser, polygon, refine,
undo and redo, delete, merge, and the shortcut help overlay. Every check
reads the instances back from the server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import tifffile
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import Page, expect
from skimage.draw import polygon as draw_polygon

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from tests.browser.test_loop import (
    EMBEDDING_TIMEOUT_MS,
    PASSWORD,
    decode,
    interior_point,
    iou,
    isolated_nuclei,
    log_in,
    screen_xy,
    snap,
    wait_for_mask,
)
from tests.conftest import shared_data
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401
from worker import rle

pytestmark = browser_marks(180, array_warning=True)

SERVER_TIMEOUT_S = 30.0
T = TypeVar("T")


# --- setting up -------------------------------------------------------------


def nuclei_labels() -> np.ndarray:
    return np.asarray(tifffile.imread(shared_data("nuclei_dsb2018/labels.tif")))


def open_editor_with(
    app: LiveApp,
    page: Page,
    username: str,
    masks: list[np.ndarray],
    *,
    wait_embedding: bool = False,
) -> tuple[Image, list[Instance]]:
    """A project (labels nucleus, debris) with the nuclei image and `masks` saved
    as nucleus instances, opened in the editor by its owner."""
    user = User.objects.create_user(username, password=PASSWORD)
    project = Project.objects.create(name="Tools", created_by=user)
    Membership.objects.create(project=project, user=user, role=Membership.Role.OWNER)
    nucleus = Label.objects.create(project=project, name="nucleus", color="#ff00ff", order=0)
    Label.objects.create(project=project, name="debris", color="#00ffff", order=1)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    upload = SimpleUploadedFile("nuclei.tif", data, content_type="image/tiff")
    [image] = image_upload(project=project, user=user, files=[upload])
    instances = [
        instance_create(image=image, user=user, label=nucleus, rle=encoded(mask, image))
        for mask in masks
    ]
    log_in(page, app, username)
    page.goto(f"{app.url}images/{image.pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    if wait_embedding:
        expect(page.locator("#status-banner")).to_have_attribute(
            "data-status", "ready", timeout=EMBEDDING_TIMEOUT_MS
        )
    return image, instances


def encoded(mask: np.ndarray, image: Image) -> dict[str, Any]:
    return rle.encode_crop(mask, 0, 0, image.height, image.width)


# --- reading the server -------------------------------------------------------


def eventually(check: Callable[[], T | None], what: str) -> T:
    """Poll `check` until it returns something truthy (the store saves in the background)."""
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def server_instances(page: Page, app: LiveApp, image: Image) -> list[dict[str, Any]]:
    response = page.request.get(f"{app.url}api/images/{image.pk}/instances/")
    assert response.ok, response.text()
    body = response.json()
    return list(body["results"] if isinstance(body, dict) else body)


def server_instance(page: Page, app: LiveApp, instance_id: int) -> dict[str, Any] | None:
    response = page.request.get(f"{app.url}api/instances/{instance_id}/")
    if response.status == 404:
        return None
    assert response.ok, response.text()
    body: dict[str, Any] = response.json()
    return body


def server_mask_when(
    page: Page, app: LiveApp, instance_id: int, ready: Callable[[np.ndarray], bool], what: str
) -> np.ndarray:
    def check() -> tuple[np.ndarray] | None:
        found = server_instance(page, app, instance_id)
        mask = decode(found["rle"]) if found else None
        return (mask,) if mask is not None and ready(mask) else None  # a tuple: truthy

    return eventually(check, what)[0]


def ids_on_server(page: Page, app: LiveApp, image: Image) -> set[int]:
    return {int(found["id"]) for found in server_instances(page, app, image)}


# --- the pointer ----------------------------------------------------------------


def drag(page: Page, points: list[tuple[float, float]], steps: int = 12) -> None:
    """A left-button drag through `points` (image pixels)."""
    page.mouse.move(*screen_xy(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*screen_xy(page, *point), steps=steps)
    page.mouse.up()


def click(page: Page, x: float, y: float, **options: Any) -> None:
    page.mouse.click(*screen_xy(page, x, y), **options)


def capsule(
    shape: tuple[int, ...], a: tuple[float, float], b: tuple[float, float], r: float
) -> np.ndarray:
    """Pixels whose centre lies within r of the segment ab (the brush's rule)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = np.clip(((xx - a[0]) * dx + (yy - a[1]) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.asarray((a[0] + t * dx - xx) ** 2 + (a[1] + t * dy - yy) ** 2 <= r * r)


def use_tool(page: Page, key: str, name: str) -> None:
    page.keyboard.press(key)
    expect(page.locator(f'#toolbar button[data-tool="{name}"]')).to_have_attribute(
        "aria-pressed", "true"
    )


def selected_ids(page: Page) -> list[int]:
    ids: list[int] = page.evaluate("[...window.maskroom.instances.selected]")
    return ids


# --- tests --------------------------------------------------------------------


def test_brush_grows_and_eraser_shrinks_the_selected_instance(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    labels = nuclei_labels()
    [target] = isolated_nuclei(labels, 1)
    nucleus = labels == target
    page = browser_page.page
    _, [instance] = open_editor_with(live_app, page, "bea", [nucleus])

    use_tool(page, "v", "select")
    click(page, *interior_point(nucleus))
    page.wait_for_function("id => window.maskroom.instances.selected.has(id)", arg=instance.pk)

    use_tool(page, "b", "brush")
    start = int(page.evaluate("window.maskroom.editing.size.radius"))
    page.keyboard.press("]")
    page.keyboard.press("]")
    page.keyboard.press("[")
    radius = int(page.evaluate("window.maskroom.editing.size.radius"))
    expect(page.locator("#brush-size")).to_have_text(f"Radius {radius} px")
    assert radius > start
    ys, xs = np.nonzero(nucleus)
    a = (float(xs.max()) + radius + 4, float(ys.min()))
    b = (float(xs.max()) + radius + 4, float(ys.max()))
    drag(page, [a, b])
    painted = nucleus | capsule(nucleus.shape, a, b, radius)
    grown = server_mask_when(
        page, live_app, instance.pk, lambda m: m.sum() > nucleus.sum(), "the brush stroke"
    )
    snap(page, "tools-brush")
    added = int(grown.sum() - nucleus.sum())
    expected = int(painted.sum() - nucleus.sum())
    assert abs(added - expected) <= 0.15 * expected, (added, expected)
    assert iou(grown, painted) > 0.9
    assert (grown & nucleus).sum() == nucleus.sum()

    use_tool(page, "e", "eraser")
    cx = float(xs.mean())
    top, bottom = (cx, float(ys.min()) - radius), (cx, float(ys.max()) + radius)
    drag(page, [top, bottom])
    erased = grown & ~capsule(nucleus.shape, top, bottom, radius)
    shrunk = server_mask_when(
        page, live_app, instance.pk, lambda m: m.sum() < grown.sum(), "the eraser stroke"
    )
    snap(page, "tools-eraser")
    assert iou(shrunk, erased) > 0.9
    assert not shrunk[int(ys.mean()), int(cx)], "the eraser left the middle of the nucleus"

    # Both edits undo, in order, on the server too.
    page.keyboard.press("Control+z")
    server_mask_when(page, live_app, instance.pk, lambda m: bool(np.array_equal(m, grown)), "undo")
    page.keyboard.press("Control+z")
    server_mask_when(
        page, live_app, instance.pk, lambda m: bool(np.array_equal(m, nucleus)), "second undo"
    )
    assert browser_page.errors == []


def test_polygon_creates_an_instance_of_the_drawn_shape(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    image, _ = open_editor_with(live_app, page, "paul", [])
    page.keyboard.press("2")  # nothing selected: the label for new instances
    expect(page.locator('#label-picker [aria-checked="true"] .name')).to_have_text("debris")
    use_tool(page, "l", "polygon")

    # Esc cancels a polygon in progress.
    for vertex in [(40.0, 40.0), (90.0, 45.0), (70.0, 90.0)]:
        click(page, *vertex)
    assert page.evaluate("window.maskroom.tools.active.vertices.length") == 3
    page.keyboard.press("Escape")
    assert page.evaluate("window.maskroom.tools.active.vertices.length") == 0

    pentagon = [(300.0, 200.0), (360.0, 230.0), (350.0, 300.0), (280.0, 310.0), (260.0, 250.0)]
    for x, y in pentagon[:-1]:
        click(page, x, y)
    page.mouse.dblclick(*screen_xy(page, *pentagon[-1]))
    [saved] = eventually(lambda: server_instances(page, live_app, image), "the polygon instance")
    snap(page, "tools-polygon")
    rr, cc = draw_polygon(
        [y - 0.5 for _, y in pentagon], [x - 0.5 for x, _ in pentagon], (image.height, image.width)
    )
    drawn = np.zeros((image.height, image.width), dtype=bool)
    drawn[rr, cc] = True
    assert saved["label"] == "debris"
    assert iou(decode(saved["rle"]), drawn) > 0.95

    # Enter closes too; then undo removes it from the server.
    triangle = [(100.0, 400.0), (160.0, 420.0), (120.0, 470.0)]
    for x, y in triangle:
        click(page, x, y)
    page.keyboard.press("Enter")
    eventually(lambda: len(server_instances(page, live_app, image)) == 2, "the second polygon")
    page.keyboard.press("Control+z")
    eventually(lambda: len(server_instances(page, live_app, image)) == 1, "undo of the polygon")
    assert browser_page.errors == []


def test_refine_reopens_an_instance_and_a_click_corrects_it(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    labels = nuclei_labels()
    [target] = isolated_nuclei(labels, 1)
    nucleus = labels == target
    xs = np.nonzero(nucleus)[1]
    part = nucleus.copy()
    part[:, xs.min() + (xs.max() - xs.min()) // 3 :] = False  # its left third
    page = browser_page.page
    image, [instance] = open_editor_with(live_app, page, "rita", [part], wait_embedding=True)

    page.keyboard.down("r")
    click(page, *interior_point(part))
    page.keyboard.up("r")
    reopened = wait_for_mask(page, 1)
    assert reopened["area"] == int(part.sum())
    assert page.evaluate("window.maskroom.promptSession.refining") == instance.pk
    expect(page.locator("#proposal")).to_contain_text(f"refining #{instance.pk}")

    click(page, *interior_point(nucleus & ~part))
    refined = decode(wait_for_mask(page, reopened["requestId"] + 1)["rle"])
    assert (refined & nucleus).sum() > 1.5 * part.sum()
    snap(page, "tools-refine")
    page.keyboard.press("Enter")
    saved = server_mask_when(
        page, live_app, instance.pk, lambda m: m.sum() != part.sum(), "the refined mask"
    )
    assert np.array_equal(saved, refined)
    assert (saved & nucleus).sum() > 1.5 * part.sum(), "the refined instance covers no more"
    assert ids_on_server(page, live_app, image) == {instance.pk}  # updated, not added
    assert page.evaluate("window.maskroom.promptSession.refining") is None

    # R on the selected instance reopens it too; Esc leaves it as saved.
    use_tool(page, "v", "select")
    click(page, *interior_point(nucleus))
    page.wait_for_function("id => window.maskroom.instances.selected.has(id)", arg=instance.pk)
    page.keyboard.press("r")
    page.wait_for_function("id => window.maskroom.promptSession.refining === id", arg=instance.pk)
    page.keyboard.press("Escape")
    assert page.evaluate("window.maskroom.promptSession.isEmpty")
    found = server_instance(page, live_app, instance.pk)
    assert found is not None and np.array_equal(decode(found["rle"]), saved)
    assert browser_page.errors == []


def test_undo_and_redo_of_create_delete_and_relabel_reach_the_server(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    labels = nuclei_labels()
    [target] = isolated_nuclei(labels, 1)
    page = browser_page.page
    image, _ = open_editor_with(live_app, page, "ulla", [], wait_embedding=True)

    click(page, *interior_point(labels == target))
    wait_for_mask(page, 1)
    page.keyboard.press("Enter")
    [created] = eventually(lambda: server_instances(page, live_app, image), "the new instance")
    expect(page.locator("#undo")).to_be_enabled()

    page.keyboard.press("Control+z")
    eventually(lambda: not server_instances(page, live_app, image), "undo: deleted on the server")
    assert server_instance(page, live_app, created["id"]) is None
    page.keyboard.press("Control+Shift+z")
    eventually(lambda: ids_on_server(page, live_app, image) == {created["id"]}, "redo: restored")
    page.keyboard.press("Control+z")
    eventually(lambda: not server_instances(page, live_app, image), "undo again")
    page.keyboard.press("Control+y")
    eventually(lambda: ids_on_server(page, live_app, image) == {created["id"]}, "Ctrl+Y redo")

    # Relabel the selected instance with a number key, then undo it.
    use_tool(page, "v", "select")
    click(page, *interior_point(labels == target))
    page.wait_for_function("id => window.maskroom.instances.selected.has(id)", arg=created["id"])
    page.keyboard.press("2")
    eventually(
        lambda: (server_instance(page, live_app, created["id"]) or {}).get("label") == "debris",
        "relabel",
    )
    expect(page.locator('#label-picker [aria-checked="true"] .name')).to_have_text("nucleus")
    page.keyboard.press("Control+z")
    eventually(
        lambda: (server_instance(page, live_app, created["id"]) or {}).get("label") == "nucleus",
        "undo of the relabel",
    )

    # Delete the selected instance, then undo: restored on the server.
    page.keyboard.press("Delete")
    eventually(lambda: not server_instances(page, live_app, image), "delete")
    assert selected_ids(page) == []
    page.keyboard.press("Control+z")
    eventually(lambda: ids_on_server(page, live_app, image) == {created["id"]}, "undo of delete")
    expect(page.locator(f'#instance-list tr[data-instance-id="{created["id"]}"]')).to_have_count(1)
    assert browser_page.errors == []


def test_merge_unites_two_instances_in_one_undoable_step(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    labels = nuclei_labels()
    first, second = (labels == i for i in isolated_nuclei(labels, 2))
    page = browser_page.page
    image, [a, b] = open_editor_with(live_app, page, "mona", [first, second])

    use_tool(page, "v", "select")
    click(page, *interior_point(first))
    page.keyboard.down("Shift")
    click(page, *interior_point(second))
    page.keyboard.up("Shift")
    assert selected_ids(page) == [a.pk, b.pk]
    snap(page, "tools-merge-selected")
    page.keyboard.press("m")
    merged = server_mask_when(
        page, live_app, a.pk, lambda m: m.sum() == (first | second).sum(), "the merged mask"
    )
    assert np.array_equal(merged, first | second)
    eventually(lambda: ids_on_server(page, live_app, image) == {a.pk}, "the second deleted")
    assert selected_ids(page) == [a.pk]

    page.keyboard.press("Control+z")
    eventually(lambda: ids_on_server(page, live_app, image) == {a.pk, b.pk}, "undo: both back")
    server_mask_when(page, live_app, a.pk, lambda m: bool(np.array_equal(m, first)), "undo: A")
    restored = server_instance(page, live_app, b.pk)
    assert restored is not None and np.array_equal(decode(restored["rle"]), second)

    page.keyboard.press("Control+Shift+z")
    eventually(lambda: ids_on_server(page, live_app, image) == {a.pk}, "redo of the merge")
    assert browser_page.errors == []


def test_the_help_overlay_lists_every_shortcut(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    open_editor_with(live_app, page, "hugo", [])
    overlay = page.locator("#help-overlay")
    expect(overlay).to_be_hidden()
    page.keyboard.press("?")
    expect(overlay).to_be_visible()
    snap(page, "tools-help")
    table: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const { SHORTCUTS } = await import("/static/maskroom/tools/shortcuts.js");
            return SHORTCUTS.map((s) => ({ keys: s.keys, does: s.does }));
        }"""
    )
    rows = overlay.locator("dt")
    expect(rows).to_have_count(len(table))
    texts = overlay.locator("dd").all_inner_texts()
    assert texts == [entry["does"] for entry in table]
    shown = " ".join(overlay.locator("kbd").all_inner_texts())
    for key in ["P", "V", "B", "E", "L", "R", "R+click", "[", "]", "Delete", "1-9", "M", "O", "H"]:
        assert key in shown, key
    for key in ["Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Enter", "Esc", "?", "F"]:
        assert key in shown, key
    page.keyboard.press("Escape")
    expect(overlay).to_be_hidden()

    page.click("#help-button")
    expect(overlay).to_be_visible()
    overlay.locator("[data-close]").click()
    expect(overlay).to_be_hidden()

    # Each tool's key selects it, as its toolbar button does.
    for key, name in [
        ("b", "brush"),
        ("e", "eraser"),
        ("l", "polygon"),
        ("v", "select"),
        ("p", "prompt"),
    ]:
        use_tool(page, key, name)
    page.click('#toolbar button[data-tool="brush"]')
    assert page.evaluate("window.maskroom.tools.active.name") == "brush"
    assert browser_page.errors == []
