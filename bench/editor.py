"""The editor with many instances, in real Chromium against a live server.

Two 1024 x 1024 images of the same kind (tests/many_instances.py: a field of
non-overlapping elliptical cells, every cell an instance): one with 2,000
instances, one with 100. Chromium (Debian's, headless, the test suite's
flags, 1280 x 800) logs in and, for each image in turn (interleaved, so the
machine's load falls on both alike):

- Opening: navigates to /images/{id}/ and takes the time from the start of
  the navigation to body[data-ready="true"] (the image and every instance
  drawn), as the page's own clock reads it (performance.now() in a
  MutationObserver); with it the instance list request (Resource Timing) and
  its size. The first open of each image is "cold" (its tiles and list never
  fetched; the server and the static files were warmed up on a third image,
  and each pyramid was built beforehand, as the worker does after an upload),
  the others "warm" (as a reload).
- Pan and zoom: for PAN_ZOOM_S seconds, each animation frame pans the view
  and zooms it (0.7x to 6x the fit scale and back, about the view's centre),
  as a hand on a trackpad would; counts the frames (fps), their intervals
  (p50, p95) and the time the viewer's draw() took in each.

Targets (the issue): open in at most 1 s with 2,000 instances; pan and zoom at
30 frames a second or more.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.common import Stats, Table, django_ready, live_server, load_note, options

COUNTS = (2000, 100)
SIDE = 1024
PASSWORD = "bench-editor-password-1"
PAN_ZOOM_S = 3.0
READY_TIMEOUT_MS = 60_000

# Set before the page's scripts run: when data-ready turns "true", note the time.
READY_CLOCK = """
new MutationObserver(() => {
  if (document.body?.dataset.ready === "true" && window.__readyAt === undefined) {
    window.__readyAt = performance.now();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
"""

# Pan and zoom every frame for `seconds`; frame intervals and draw() times in ms.
PAN_ZOOM = """
async (seconds) => {
  const viewer = window.maskroom.viewer;
  viewer.fit();
  const fitScale = viewer.scale;
  const draws = [];
  const draw = viewer.draw.bind(viewer);
  viewer.draw = () => {
    const start = performance.now();
    draw();
    draws.push(performance.now() - start);
  };
  const rect = viewer.canvas.getBoundingClientRect();
  const centre = { x: rect.left + rect.width / 2, y: rect.top + rect.height / 2 };
  const stamps = [];
  await new Promise((resolve) => {
    const begin = performance.now();
    const step = (now) => {
      stamps.push(now);
      const t = (now - begin) / 1000;
      if (t >= seconds) return resolve();
      // Zoom between 0.7x and 6x the fit scale (a 2 s cycle) while circling.
      const phase = 0.5 - 0.5 * Math.cos(Math.PI * t);
      const target = fitScale * Math.exp(Math.log(0.7) + Math.log(6 / 0.7) * phase);
      viewer.zoomAt(centre, target / viewer.scale);
      viewer.panBy(6 * Math.cos(2 * Math.PI * t), 6 * Math.sin(2 * Math.PI * t));
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
  viewer.draw = draw;
  const intervals = stamps.slice(1).map((s, i) => s - stamps[i]);
  return { intervals, draws, seconds: (stamps[stamps.length - 1] - stamps[0]) / 1000 };
}
"""

OPEN_FIGURES = """
() => {
  const list = performance.getEntriesByType("resource")
    .find((e) => /\\/api\\/images\\/\\d+\\/instances\\//.test(e.name));
  return {
    readyMs: window.__readyAt,
    listMs: list ? list.responseEnd - list.startTime : null,
    listBytes: list ? list.encodedBodySize : null,
    count: window.maskroom.instances.items.size,
    stats: { ...window.maskroom.instances.layer.stats },
  };
}
"""


@dataclass
class Crowd:
    count: int
    image_id: int
    opens: list[dict[str, Any]]
    intervals: list[float]
    draws: list[float]
    seconds: float = 0.0


def run() -> list[Table]:
    quick = options().quick
    *crowds, warm_up = _crowds_create()
    with live_server(label="editor") as server, _chromium() as page:
        base = server.url.replace("ws://", "http://") + "/"
        _log_in(page, base)
        _open(page, base, warm_up)
        for _ in range(2 if quick else 5):
            for crowd in crowds:
                crowd.opens.append(_open(page, base, crowd))
        for _ in range(1 if quick else 2):
            for crowd in crowds:
                _open(page, base, crowd)
                _pan_zoom(page, crowd)
    return [_open_table(crowds), _frames_table(crowds)]


# --- the scene ------------------------------------------------------------------


def _crowds_create() -> list[Crowd]:
    django_ready()
    from django.contrib.auth.models import User

    from backend.images.pyramid import pyramid_build_for
    from backend.projects.services import project_create
    from tests.many_instances import crowded_image_create

    user = User.objects.create_user("bench-editor", password=PASSWORD)
    project = project_create(user=user, name="Crowded", labels=["nucleus", "debris"])
    crowds = []
    for count in (*COUNTS, 1):  # the last one only warms the server and the browser up
        image, _, _ = crowded_image_create(project=project, user=user, count=count, side=SIDE)
        pyramid_build_for(image_id=image.pk)  # as the worker does after an upload
        crowds.append(Crowd(count=count, image_id=image.pk, opens=[], intervals=[], draws=[]))
    return crowds


@contextmanager
def _chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.live import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(READY_TIMEOUT_MS)
            context.add_init_script(READY_CLOCK)
            yield context.new_page()
        finally:
            browser.close()


def _log_in(page: Any, base: str) -> None:
    page.goto(f"{base}accounts/login/")
    page.fill("input[name=username]", "bench-editor")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base)


def _open(page: Any, base: str, crowd: Crowd) -> dict[str, Any]:
    page.goto(f"{base}images/{crowd.image_id}/")
    # A function, not an expression: an expression is eval()ed, which the CSP refuses.
    page.wait_for_function("() => window.__readyAt !== undefined", timeout=READY_TIMEOUT_MS)
    figures: dict[str, Any] = page.evaluate(OPEN_FIGURES)
    if figures["count"] != crowd.count:
        raise RuntimeError(f"the editor drew {figures['count']} instances, not {crowd.count}")
    return figures


def _pan_zoom(page: Any, crowd: Crowd) -> None:
    result = page.evaluate(PAN_ZOOM, PAN_ZOOM_S)
    crowd.intervals += result["intervals"]
    crowd.draws += result["draws"]
    crowd.seconds += result["seconds"]


# --- tables ---------------------------------------------------------------------


def _open_table(crowds: list[Crowd]) -> Table:
    table = Table(
        "Opening the editor: navigation start to body[data-ready=true]",
        ["instances", "cold ms", "warm p50 ms", "warm max ms", "warm runs", "list request ms",
         "list KiB", "decode ms", "paint ms"],
    )  # fmt: skip
    for crowd in crowds:
        cold, warm = crowd.opens[0], crowd.opens[1:]
        ready = Stats.of([o["readyMs"] for o in warm])
        list_ms = Stats.of([o["listMs"] for o in crowd.opens if o["listMs"] is not None])
        decode = Stats.of([o["stats"]["decodeMs"] for o in crowd.opens])
        paint = Stats.of([o["stats"]["fullPaintMs"] for o in crowd.opens])
        size = (crowd.opens[-1]["listBytes"] or 0) / 1024
        table.add(crowd.count, cold["readyMs"], ready.p50, ready.max, ready.n, list_ms.p50, size,
                  decode.p50, paint.p50)  # fmt: skip
    table.notes += [
        f"{SIDE} x {SIDE} uint8 image, instances of ~100-300 px; target: <= 1000 ms with 2,000",
        "cold: the first open of that image in this browser; warm: the later ones",
        "list request: GET of the image's instances, request start to last byte (p50)",
        "decode: the RLEs to masks; paint: every mask into the layer's tiles (p50, in the page)",
        f"Chromium {_chromium_version()}, headless, software rendering (--disable-gpu), 1280 x 800",
        load_note(),
    ]
    return table


def _frames_table(crowds: list[Crowd]) -> Table:
    table = Table(
        f"Pan and zoom: every frame moves the view ({PAN_ZOOM_S:.0f} s runs)",
        [
            "instances",
            "fps",
            "frame p50 ms",
            "frame p95 ms",
            "draw p50 ms",
            "draw p95 ms",
            "frames",
        ],
    )
    fps = {}
    for crowd in crowds:
        frames = Stats.of(crowd.intervals)
        draws = Stats.of(crowd.draws)
        fps[crowd.count] = len(crowd.intervals) / max(crowd.seconds, 1e-9)
        table.add(
            crowd.count, fps[crowd.count], frames.p50, frames.p95, draws.p50, draws.p95, frames.n
        )
    many, few = max(fps), min(fps)
    table.notes += [
        f"fps with {many} instances / fps with {few}: {fps[many] / max(fps[few], 1e-9):.2f}",
        "frame: interval between animation frames; draw: Viewer.draw() (image and every layer)",
        "target: >= 30 fps with 2,000 instances; headless Chromium paces frames at 60 Hz",
        load_note(),
    ]
    return table


def _chromium_version() -> str:
    from tests.live import CHROMIUM

    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip().removeprefix("Chromium ").split()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"
