"""Seeing the data in real Chromium against the live app: a 16-bit
two-channel image with per-channel colour, contrast and visibility (checked
on screenshot pixels), display settings kept per project, the model's
channels shown, and a 12,000 x 12,000 image opened from its tile pyramid."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from django.contrib.auth.models import User
from django.core.files import File
from PIL import Image as PILImage
from playwright.sync_api import Page, expect

from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from tests.browser.test_loop import PASSWORD, log_in, screen_xy, snap
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401

pytestmark = browser_marks(180, array_warning=True)

PIXEL_TIMEOUT_S = 15.0
OPEN_TIMEOUT_MS = 60_000

# The two-channel image: 320 x 240, uint16.
LEFT = (40, 70, 140, 170)  # x0, y0, x1, y1 of the square in channel 0
RIGHT = (180, 70, 280, 170)  # ... in channel 1
GREEN, MAGENTA, BLACK = (0, 255, 0), (255, 0, 255), (0, 0, 0)


def two_channel_planes() -> np.ndarray:
    """Channel 0: 1000, 1200 in the left square, and 60 hot pixels at 5000 (under
    0.5 %, so the 99.5th percentile stays 1200); channel 1: 30000, 40000 in the
    right square."""
    planes = np.empty((2, 240, 320), np.uint16)
    planes[0], planes[1] = 1000, 30000
    x0, y0, x1, y1 = LEFT
    planes[0, y0:y1, x0:x1] = 1200
    planes[0, 5, 10:70] = 5000
    x0, y0, x1, y1 = RIGHT
    planes[1, y0:y1, x0:x1] = 40000
    return planes


def tiff_path(planes: np.ndarray, path: Path, *, compress: bool = False) -> Path:
    tifffile.imwrite(
        path,
        planes,
        photometric="minisblack",
        metadata={"axes": "CYX" if planes.ndim == 3 else "YX"},
        compression="zlib" if compress else None,
    )
    return path


def owner_with_project(username: str) -> Project:
    user = User.objects.create_user(username, password=PASSWORD)
    project = Project.objects.create(name=f"{username}'s channels", created_by=user)
    Membership.objects.create(project=project, user=user, role=Membership.Role.OWNER)
    Label.objects.create(project=project, name="cell", color="#ffcc00", order=0)
    return project


def upload_through_the_page(page: Page, app: LiveApp, project: Project, path: Path) -> int:
    page.goto(f"{app.url}projects/{project.pk}/")
    page.set_input_files("#upload input[name=file]", str(path))
    page.click("#upload button[type=submit]")
    expect(page.locator(".image-card")).to_have_count(1)
    return Image.objects.get(project=project).pk


# --- pixels -------------------------------------------------------------------


def screen_rgb(page: Page, x: float, y: float) -> tuple[int, int, int]:
    """Mean colour of a 5 x 5 screenshot patch around image point (x, y)."""
    sx, sy = screen_xy(page, x, y)
    clip: Any = {"x": round(sx) - 2, "y": round(sy) - 2, "width": 5, "height": 5}
    shot = PILImage.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB")
    mean = np.asarray(shot, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return (round(mean[0]), round(mean[1]), round(mean[2]))


def centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2


def wait_for_colour(
    page: Page, xy: tuple[float, float], rgb: tuple[int, int, int], tolerance: int = 6
) -> None:
    """Poll screenshots until the image point shows `rgb` (the viewer redraws on
    the next frames, recompositing within a time budget)."""
    deadline = time.monotonic() + PIXEL_TIMEOUT_S
    while True:
        seen = screen_rgb(page, *xy)
        if all(abs(a - b) <= tolerance for a, b in zip(seen, rgb, strict=True)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"image point {xy} shows {seen}, expected {rgb}")
        time.sleep(0.1)


def channel(page: Page, index: int) -> Any:
    return page.locator(f'#channel-list .channel[data-channel="{index}"]')


def set_limits_by_number(page: Page, index: int, low: float, high: float) -> None:
    row = channel(page, index)
    # Widen first so that min < max holds after each step.
    row.locator("input.channel-max").fill(str(max(high, low + 1e9)))
    row.locator("input.channel-max").press("Enter")
    row.locator("input.channel-min").fill(str(low))
    row.locator("input.channel-min").press("Enter")
    row.locator("input.channel-max").fill(str(high))
    row.locator("input.channel-max").press("Enter")


def limits_shown(page: Page, index: int) -> tuple[float, float]:
    row = channel(page, index)
    low = float(row.locator("input.channel-min").input_value())
    high = float(row.locator("input.channel-max").input_value())
    return low, high


def wait_saved(page: Page) -> None:
    expect(page.locator("#display-save-state")).to_have_attribute("data-state", "saved")


# --- tests --------------------------------------------------------------------


def test_a_16_bit_two_channel_image_with_per_channel_contrast(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    project = owner_with_project("cora")
    page = browser_page.page
    log_in(page, live_app, "cora")
    image_id = upload_through_the_page(
        page, live_app, project, tiff_path(two_channel_planes(), tmp_path / "two.tif")
    )
    page.goto(f"{live_app.url}images/{image_id}/")
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#model-mapping")).to_have_text("Model sees: R = ch0, G = ch1, B = none")
    left, right, background = centre(LEFT), centre(RIGHT), (20.0, 220.0)

    # Defaults: ch0 red and ch1 green, each stretched to its percentiles.
    wait_for_colour(page, left, (255, 0, 0))
    wait_for_colour(page, right, (0, 255, 0))

    # Channel 0 green by number inputs; first a wide range, then a tight one.
    channel(page, 0).locator("select.channel-color").select_option("green")
    set_limits_by_number(page, 0, 0, 2400)
    wait_for_colour(page, left, (0, 128, 0), tolerance=8)  # 1200 of 0..2400
    set_limits_by_number(page, 0, 1000, 1200)
    wait_for_colour(page, left, GREEN)

    # Channel 1 magenta by the sliders.
    row = channel(page, 1)
    row.locator("select.channel-color").select_option("magenta")
    row.locator("input.channel-max-slider").fill("40000")
    row.locator("input.channel-min-slider").fill("30000")
    assert limits_shown(page, 1) == (30000, 40000)
    wait_for_colour(page, right, MAGENTA)
    wait_for_colour(page, left, GREEN)
    wait_for_colour(page, background, BLACK)
    snap(page, "channels-green-magenta")

    # Channel 1 off: its square goes black, channel 0 stays.
    row.locator("input.channel-visible").uncheck()
    wait_for_colour(page, right, BLACK)
    wait_for_colour(page, left, GREEN)

    # Auto: the percentile stretch (1000..1200, not the hot pixels' 5000).
    set_limits_by_number(page, 0, 0, 60000)
    wait_for_colour(page, left, (0, 5, 0), tolerance=6)
    channel(page, 0).locator("button.channel-auto").click()
    stats = page.request.get(f"{live_app.url}api/images/{image_id}/").json()["pyramid"]
    p_low, p_high = stats["channels"][0]["p_low"], stats["channels"][0]["p_high"]
    assert (p_low, p_high) == (1000, 1200) and stats["channels"][0]["max"] == 5000
    assert limits_shown(page, 0) == (1000, 1200)
    wait_for_colour(page, left, GREEN)

    # Kept for the project: the server has them, and a reload shows them.
    wait_saved(page)
    stored = page.request.get(f"{live_app.url}api/projects/{project.pk}/display/").json()
    assert stored["channels"] == [
        {"visible": True, "color": "green", "min": 1000, "max": 1200},
        {"visible": False, "color": "magenta", "min": 30000, "max": 40000},
    ]
    page.reload()
    page.wait_for_selector('body[data-ready="true"]')
    expect(channel(page, 1).locator("input.channel-visible")).not_to_be_checked()
    expect(channel(page, 1).locator("select.channel-color")).to_have_value("magenta")
    wait_for_colour(page, left, GREEN)
    wait_for_colour(page, right, BLACK)

    # Reset: back to the defaults, for the whole project.
    page.click("#channels-reset")
    wait_for_colour(page, right, (0, 255, 0))
    wait_for_colour(page, left, (255, 0, 0))
    wait_saved(page)
    assert page.request.get(f"{live_app.url}api/projects/{project.pk}/display/").json() == {
        "channels": []
    }
    assert browser_page.errors == []


def test_the_owner_changes_the_model_channels_on_the_project_page(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    project = owner_with_project("olga")
    page = browser_page.page
    log_in(page, live_app, "olga")
    image_id = upload_through_the_page(
        page, live_app, project, tiff_path(two_channel_planes(), tmp_path / "two.tif")
    )
    card = page.locator("#mapping-card")
    expect(card.locator(".mapping-summary")).to_contain_text("Model sees: default")
    card.locator('select[data-colour="red"]').select_option("1")
    card.locator('select[data-colour="green"]').select_option("0")
    page.once("dialog", lambda dialog: dialog.accept())
    card.locator("button[type=submit]").click()
    expect(card.locator(".mapping-summary")).to_have_text(
        "Model sees: R = ch1, G = ch0, B = none; window automatic (each image's percentile stretch)"
    )
    expect(card.locator(".hint")).to_contain_text("computed again")
    snap(page, "project-model-channels")
    project.refresh_from_db()
    assert project.settings["channel_mapping"] == [1, 0, None]
    page.goto(f"{live_app.url}images/{image_id}/")
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#model-mapping")).to_have_text("Model sees: R = ch1, G = ch0, B = none")
    assert browser_page.errors == []


def test_8_bit_colour_shows_as_is_and_float_samples_keep_their_values(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    project = owner_with_project("flo")
    user = project.created_by
    colours = [(255, 0, 0), (0, 128, 255), (40, 200, 60)]
    rgb = np.zeros((90, 120, 3), np.uint8)
    for i, colour in enumerate(colours):
        rgb[:, i * 40 : (i + 1) * 40] = colour
    rgb_path = tmp_path / "colour.png"
    PILImage.fromarray(rgb).save(rgb_path)
    floats = np.full((150, 200), -1.0, np.float32)
    floats[:, 100:] = 3.5
    floats[10:30, 10:30] = np.nan
    float_path = tiff_path(floats, tmp_path / "float.tif")
    images = []
    for path in (rgb_path, float_path):
        with path.open("rb") as handle:
            images += image_upload(project=project, user=user, files=[File(handle, name=path.name)])
    page = browser_page.page
    log_in(page, live_app, "flo")

    page.goto(f"{live_app.url}images/{images[0].pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    for i, colour in enumerate(colours):
        wait_for_colour(page, (i * 40 + 20, 45), colour, tolerance=2)
    expect(channel(page, 2).locator("select.channel-color")).to_have_value("blue")

    page.goto(f"{live_app.url}images/{images[1].pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    assert limits_shown(page, 0) == (-1, 3.5)  # the percentile stretch of the finite values
    wait_for_colour(page, (50, 75), BLACK)
    wait_for_colour(page, (150, 75), (255, 255, 255))
    wait_for_colour(page, (20, 20), BLACK)  # NaN
    set_limits_by_number(page, 0, -1, 8)
    wait_for_colour(page, (150, 75), (128, 128, 128))  # (3.5 + 1) / 9 of the way
    assert browser_page.errors == []


# --- a large image --------------------------------------------------------------

BIG = 12_000
BLOCK = 1_500  # checkerboard blocks: 20000 and 2000
STRIPES = (5_000, 5_000, 5_200, 5_200)  # x0, y0, x1, y1: 4-pixel stripes of 60000 and 0


def big_planes() -> np.ndarray:
    blocks = BIG // BLOCK
    light = (np.arange(blocks)[:, None] + np.arange(blocks)[None, :]) % 2 == 0
    values = np.where(light, 20000, 2000).astype(np.uint16)
    planes = np.repeat(np.repeat(values, BLOCK, axis=0), BLOCK, axis=1)
    x0, y0, x1, y1 = STRIPES
    columns = np.arange(x0, x1)
    planes[y0:y1, x0:x1] = np.where((columns // 4) % 2 == 0, 60000, 0).astype(np.uint16)
    return planes


def tile_level(url: str) -> int | None:
    match = re.search(r"/tiles/(\d+)/\d+/\d+\.bin", url)
    return int(match.group(1)) if match else None


def test_a_12000_pixel_image_opens_from_its_tile_pyramid(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    project = owner_with_project("gil")
    path = tiff_path(big_planes(), tmp_path / "big.tif", compress=True)
    with path.open("rb") as handle:
        [image] = image_upload(
            project=project, user=project.created_by, files=[File(handle, name="big.tif")]
        )
    page = browser_page.page
    log_in(page, live_app, "gil")
    tiles: list[str] = []
    page.on("request", lambda r: tiles.append(r.url) if "/tiles/" in r.url else None)

    started = time.monotonic()
    page.goto(f"{live_app.url}images/{image.pk}/")
    page.wait_for_selector('body[data-ready="true"]', timeout=OPEN_TIMEOUT_MS)
    opened_s = time.monotonic() - started
    timings = page.evaluate(
        """() => performance.getEntriesByType("resource")
          .filter((e) => e.name.includes("/api/"))
          .map((e) => `${e.name.replace(location.origin, "")}`
            + ` ${e.startTime.toFixed(0)}+${e.duration.toFixed(0)} ms`)"""
    )
    summary = f"12000 x 12000 opened in {opened_s:.2f} s with {len(tiles)} tile requests"
    print(summary, *timings, sep="\n  ")
    levels = [tile_level(url) for url in tiles]
    top = len(page.evaluate("window.maskroom.imageView.tiles.pyramid.levels")) - 1
    assert top == 5
    assert 1 <= len(tiles) <= 12, tiles
    assert min(level for level in levels if level is not None) >= 3, levels

    # Fitted: the checkerboard, and the stripes averaged to bright.
    for (x, y), rgb in [
        ((BLOCK / 2, BLOCK / 2), (255, 255, 255)),
        ((BLOCK * 1.5, BLOCK / 2), BLACK),
        ((BLOCK * 2.5, BLOCK * 5.5), BLACK),
        ((BLOCK * 6.5, BLOCK * 4.5), (255, 255, 255)),
    ]:
        wait_for_colour(page, (x, y), rgb)
    snap(page, "big-fitted")

    # Zoom to 4 screen pixels per image pixel over the stripes: level 0 tiles, a few.
    before = len(tiles)
    page.evaluate(
        """([x, y]) => {
          const v = window.maskroom.viewer;
          const rect = v.canvas.getBoundingClientRect();
          const at = v.imageToScreen(x, y);
          v.zoomAt(at, 4 / v.scale);
          const now = v.imageToScreen(x, y);
          v.panBy(rect.left + rect.width / 2 - now.x, rect.top + rect.height / 2 - now.y);
        }""",
        [5_100, 5_100],
    )
    page.evaluate("window.maskroom.imageView.tiles.loaded()")
    new = tiles[before:]
    assert 1 <= len(new) <= 8, new
    assert 0 in [tile_level(url) for url in new], new
    for x, rgb in [(5_001.5, (255, 255, 255)), (5_005.5, BLACK), (5_009.5, (255, 255, 255))]:
        wait_for_colour(page, (x, 5_100.5), rgb)
    snap(page, "big-zoomed")
    assert browser_page.errors == []
