"""The editor with 2,000 instances on one image, in real Chromium.

The instances are saved straight into the database (tests/many_instances.py:
non-overlapping ellipses on a 1024 x 1024 field), then an annotator opens the
editor and checks what is drawn by reading screenshot pixels at cell centres:
the fill in the label's colour at the chosen opacity, nothing with H, only
outlines with O, the settings remembered after a reload; the list shows the
count, stays lazy, sorts, and a row click centres its instance; an instance
added through the store is painted without repainting the others. Timings
are not checked here: bench/editor.py measures them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image as PILImage
from playwright.sync_api import Page, expect

from backend.images.models import Image
from backend.projects.models import Label
from backend.projects.services import project_create
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401
from tests.many_instances import Cell, cell_rle, crowded_image_create

pytestmark = browser_marks(240)

PASSWORD = "annotator-password-1"
COUNT = 2000
SPARE = 10  # cells in the picture without an instance
SIDE = 1024
READY_TIMEOUT_MS = 60_000
# Set MASKROOM_SCREENSHOTS=folder to keep each screenshot the checks read.
SCREENSHOTS = os.environ.get("MASKROOM_SCREENSHOTS", "")
TOLERANCE = 14  # per channel, in 0-255 screenshot values
# Zoom to an instance as a row click does, without keeping it selected (highlighted).
ZOOM_TO = "id => { window.maskroom.instances.show(id); window.maskroom.instances.setSelected([]); }"


@pytest.fixture
def crowded(live_app: LiveApp) -> dict[str, Any]:
    user = User.objects.create_user("ada", password=PASSWORD)
    project = project_create(user=user, name="Crowded", labels=["nucleus", "debris"])
    image, cells, spares = crowded_image_create(
        project=project, user=user, count=COUNT, side=SIDE, spare=SPARE
    )
    label = Label.objects.get(project=project, name="nucleus")
    ids = list(image.instances.order_by("id").values_list("id", flat=True))
    return {"image": image, "cells": cells, "spares": spares, "ids": ids, "label": label}


# --- steps ------------------------------------------------------------------


def log_in_and_open(page: Page, app: LiveApp, image: Image) -> None:
    page.goto(f"{app.url}accounts/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(app.url)
    open_editor(page, app, image)


def open_editor(page: Page, app: LiveApp, image: Image) -> None:
    page.goto(f"{app.url}images/{image.pk}/")
    page.wait_for_selector('body[data-ready="true"]', timeout=READY_TIMEOUT_MS)


def hex_rgb(color: str) -> np.ndarray:
    value = int(color.lstrip("#"), 16)
    return np.array([(value >> 16) & 255, (value >> 8) & 255, value & 255], dtype=float)


def screen_xy(page: Page, x: float, y: float) -> tuple[float, float]:
    xy = page.evaluate("([x, y]) => window.maskroom.viewer.imageToScreen(x, y)", [x, y])
    return xy["x"], xy["y"]


def pixels_at(page: Page, points: list[tuple[float, float]]) -> list[np.ndarray]:
    """The screenshot's RGB at each image point (x, y), after the next frame."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    png = page.screenshot()
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SCREENSHOTS) / f"many-{len(list(Path(SCREENSHOTS).iterdir()))}.png").write_bytes(png)
    shot = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    out = []
    for x, y in points:
        sx, sy = screen_xy(page, x, y)
        out.append(shot[int(sy), int(sx)])
    return out


def centre(cell: Cell) -> tuple[float, float]:
    return cell.cx + 0.5, cell.cy + 0.5


def blend(color: np.ndarray, alpha: float, under: np.ndarray) -> np.ndarray:
    return color * alpha + under * (1 - alpha)


def assert_close(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert np.abs(actual - expected).max() <= TOLERANCE, f"{what}: {actual} != {expected}"


def display_settings(page: Page) -> dict[str, Any]:
    settings: dict[str, Any] = page.evaluate("({...window.maskroom.instances.layer.display})")
    return settings


def layer_stats(page: Page) -> dict[str, int]:
    stats: dict[str, int] = page.evaluate("({...window.maskroom.instances.layer.stats})")
    return stats


def viewer_centre(page: Page) -> tuple[float, float]:
    xy = page.evaluate(
        "() => { const r = window.maskroom.viewer.canvas.getBoundingClientRect();"
        " return window.maskroom.viewer.screenToImage("
        "r.left + r.width / 2, r.top + r.height / 2); }"
    )
    return xy["x"], xy["y"]


def in_view(cells: list[Cell]) -> list[Cell]:
    """Cells clear of the overlays at the stage's top and left (banner, tool palette)."""
    return [c for c in cells if c.cx > SIDE * 0.3 and c.cy > SIDE * 0.2]


def grey_of_cells(page: Page, spares: list[Cell]) -> np.ndarray:
    """What a cell without an instance looks like on screen (the display may stretch contrast)."""
    return pixels_at(page, [centre(spares[-1])])[0]


# --- tests ------------------------------------------------------------------


def test_it_draws_2000_instances_and_lists_them_lazily(
    live_app: LiveApp, browser_page: BrowserPage, crowded: dict[str, Any]
) -> None:
    page = browser_page.page
    log_in_and_open(page, live_app, crowded["image"])
    expect(page.locator("#instance-count")).to_have_text(str(COUNT))
    assert page.evaluate("window.maskroom.instances.items.size") == COUNT
    assert layer_stats(page)["fullPaints"] == 1

    # Every sampled cell shows the label's colour over the cell's grey.
    cells: list[Cell] = in_view(crowded["cells"])
    grey = grey_of_cells(page, crowded["spares"])
    color = hex_rgb(crowded["label"].color)
    sample = cells[:: len(cells) // 7]
    for cell, pixel in zip(sample, pixels_at(page, [centre(c) for c in sample]), strict=True):
        assert_close(pixel, blend(color, 0.45, grey), f"cell at {cell}")
    # Between cells: the image alone, darker than the cells.
    gap = (cells[0].cx + 0.5, cells[0].cy + cells[0].ry + 1.5)
    assert pixels_at(page, [gap])[0].max() < grey.min() - 40

    # Hit testing for the tools: the topmost instance under a point, or null.
    ids = crowded["ids"]
    index = crowded["cells"].index(cells[5])
    at = "([x, y]) => window.maskroom.instances.instanceAt(x, y)"
    assert page.evaluate(at, centre(cells[5])) == ids[index]
    assert page.evaluate(at, gap) is None
    assert page.evaluate(at, centre(crowded["spares"][0])) is None

    # Zoomed far out, a coarser level of tiles is painted: the cells still show.
    tiles_before = layer_stats(page)["tilePaints"]
    page.evaluate(
        "() => { const v = window.maskroom.viewer, r = v.canvas.getBoundingClientRect();"
        " v.zoomAt({x: r.left + r.width / 2, y: r.top + r.height / 2}, 0.25); }"
    )
    page.wait_for_function(
        "n => window.maskroom.instances.layer.stats.tilePaints > n", arg=tiles_before
    )
    far = pixels_at(page, [centre(c) for c in sample[:3]])
    assert all(p[0] > p[1] + 40 for p in far), far  # the label's red, not grey
    page.keyboard.press("f")

    # Only the rows in view are in the DOM; scrolling to the end shows the last one.
    rows = page.locator("#instance-list tr[data-instance-id]")
    assert 5 <= rows.count() <= 80
    page.locator("#instance-scroll").evaluate("node => { node.scrollTop = node.scrollHeight; }")
    expect(page.locator(f'#instance-list tr[data-instance-id="{ids[-1]}"]')).to_be_visible()
    assert rows.count() <= 80
    assert not browser_page.errors, browser_page.errors


def test_a_row_click_centres_and_selects_its_instance_and_sorting_works(
    live_app: LiveApp, browser_page: BrowserPage, crowded: dict[str, Any]
) -> None:
    page = browser_page.page
    log_in_and_open(page, live_app, crowded["image"])
    cells: list[Cell] = crowded["cells"]
    ids: list[int] = crowded["ids"]
    grey = grey_of_cells(page, crowded["spares"])

    # Sorting by area, largest first: the first row is the largest cell.
    page.click("#instance-scroll th button[data-sort=area]")
    page.click("#instance-scroll th button[data-sort=area]")
    expect(page.locator("#instance-scroll th.col-area")).to_have_attribute(
        "aria-sort", "descending"
    )
    first = page.locator("#instance-list tr[data-instance-id]").first
    areas = dict(crowded["image"].instances.values_list("id", "area"))
    assert areas[int(first.get_attribute("data-instance-id") or 0)] == max(areas.values())

    # Scroll to a row far down, click it: the viewer centres on its cell and zooms in.
    page.click("#instance-scroll th button[data-sort=id]")
    expect(page.locator("#instance-scroll th.col-id")).to_have_attribute("aria-sort", "ascending")
    target = 1900
    page.locator("#instance-scroll").evaluate(f"node => {{ node.scrollTop = {target} * 30; }}")
    row = page.locator(f'#instance-list tr[data-instance-id="{ids[target]}"]')
    scale = page.evaluate("window.maskroom.viewer.scale")
    row.locator("td").first.click()
    expect(row).to_have_attribute("aria-selected", "true")
    cx, cy = viewer_centre(page)
    assert abs(cx - (cells[target].cx + 0.5)) < 1.5 and abs(cy - (cells[target].cy + 0.5)) < 1.5
    assert page.evaluate("window.maskroom.viewer.scale") > scale * 2
    assert page.evaluate("[...window.maskroom.instances.selected]") == [ids[target]]
    # Highlighted: its fill is stronger than its neighbour's.
    chosen, neighbour = pixels_at(page, [centre(cells[target]), centre(cells[target + 1])])
    color = hex_rgb(crowded["label"].color)
    assert_close(neighbour, blend(color, 0.45, grey), "the neighbour")
    assert np.abs(chosen - color).max() < np.abs(neighbour - color).max() - 30

    # A selection made elsewhere (a tool) scrolls its row into view.
    page.evaluate("id => window.maskroom.instances.setSelected([id])", ids[3])
    selected = page.locator(f'#instance-list tr[data-instance-id="{ids[3]}"]')
    expect(selected).to_have_attribute("aria-selected", "true")
    expect(selected).to_be_in_viewport()
    assert not browser_page.errors, browser_page.errors


def test_display_controls_hide_outline_and_opacity_are_remembered(
    live_app: LiveApp, browser_page: BrowserPage, crowded: dict[str, Any]
) -> None:
    page = browser_page.page
    log_in_and_open(page, live_app, crowded["image"])
    cell = in_view(crowded["cells"])[40]
    color = hex_rgb(crowded["label"].color)
    inside = centre(cell)
    edge = (cell.cx + 0.5, cell.cy - cell.ry + 0.5)  # the top pixel of the ellipse
    grey = grey_of_cells(page, crowded["spares"])
    # Zoomed in (a row click), so that one image pixel is many screen pixels.
    cell_id = crowded["ids"][crowded["cells"].index(cell)]
    page.evaluate(ZOOM_TO, cell_id)
    assert page.evaluate("window.maskroom.viewer.scale") >= 4
    filled = blend(color, 0.45, grey)
    assert_close(pixels_at(page, [inside])[0], filled, "filled")
    painted = layer_stats(page)["instancePaints"]

    page.locator("#viewer").focus()
    page.keyboard.press("h")
    expect(page.locator("#instance-hide")).to_have_attribute("aria-pressed", "true")
    pixel_inside, pixel_edge = pixels_at(page, [inside, edge])
    assert_close(pixel_inside, grey, "hidden: inside")
    assert_close(pixel_edge, grey, "hidden: edge")
    page.keyboard.press("h")
    assert_close(pixels_at(page, [inside])[0], filled, "shown again")

    page.keyboard.press("o")
    expect(page.locator("#instance-outline")).to_have_attribute("aria-pressed", "true")
    pixel_inside, pixel_edge = pixels_at(page, [inside, edge])
    assert_close(pixel_inside, grey, "outline only: inside")
    assert_close(pixel_edge, blend(color, 0.95, grey), "outline only: edge")
    page.click("#instance-outline")
    assert_close(pixels_at(page, [inside])[0], filled, "filled again")

    page.locator("#instance-opacity").fill("90")
    assert display_settings(page)["opacity"] == pytest.approx(0.9)
    assert_close(pixels_at(page, [inside])[0], blend(color, 0.9, grey), "opacity 90%")
    page.locator("#viewer").focus()
    page.keyboard.press("o")
    stats = layer_stats(page)
    assert stats["fullPaints"] == 1 and stats["instancePaints"] == painted  # nothing repainted

    # Remembered per project: a reload keeps them.
    open_editor(page, live_app, crowded["image"])
    assert display_settings(page) == {
        "opacity": pytest.approx(0.9),
        "outline": True,
        "hidden": False,
    }
    expect(page.locator("#instance-opacity")).to_have_value("90")
    expect(page.locator("#instance-outline")).to_have_attribute("aria-pressed", "true")
    page.evaluate(ZOOM_TO, cell_id)
    assert_close(pixels_at(page, [inside])[0], grey, "outline only after the reload")
    assert not browser_page.errors, browser_page.errors


def test_an_instance_added_through_the_store_is_painted_alone(
    live_app: LiveApp, browser_page: BrowserPage, crowded: dict[str, Any]
) -> None:
    page = browser_page.page
    log_in_and_open(page, live_app, crowded["image"])
    spot: Cell = crowded["spares"][0]
    grey = grey_of_cells(page, crowded["spares"])
    debris = Label.objects.get(project=crowded["label"].project, name="debris")
    at = "([x, y]) => window.maskroom.instances.instanceAt(x, y)"
    assert page.evaluate(at, centre(spot)) is None
    before = layer_stats(page)

    # What accepting a mask does: store.create.
    page.evaluate(
        "([labelId, rle]) => window.maskroom.store.create({labelId, rle})",
        [debris.pk, cell_rle(spot, SIDE)],
    )
    expect(page.locator("#instance-count")).to_have_text(str(COUNT + 1))
    pixel = pixels_at(page, [centre(spot)])[0]
    assert_close(pixel, blend(hex_rgb(debris.color), 0.45, grey), "the new instance")
    after = layer_stats(page)
    assert after["fullPaints"] == before["fullPaints"]
    assert after["instancePaints"] - before["instancePaints"] <= 2
    # Saved in the background: the store swaps in the server's id.
    page.wait_for_function(
        f"([x, y]) => typeof ({at})([x, y]) === 'number'", arg=list(centre(spot))
    )
    assert crowded["image"].instances.count() == COUNT + 1

    # Deleting it repaints only its place.
    page.evaluate(f"([x, y]) => window.maskroom.store.remove(({at})([x, y]))", list(centre(spot)))
    expect(page.locator("#instance-count")).to_have_text(str(COUNT))
    assert_close(pixels_at(page, [centre(spot)])[0], grey, "deleted")
    final = layer_stats(page)
    assert final["fullPaints"] == before["fullPaints"]
    assert final["instancePaints"] - before["instancePaints"] <= 3
    assert not browser_page.errors, browser_page.errors
