"""The quality page in real Chromium: three students label two images with
overlap 3, so each image gets a consensus from the live worker shortly after
its last set is submitted; the teacher opens the quality page and sees each
student's row, both Chart.js plots drawn (within the Content-Security-Policy)
and the least agreed images, and downloads the table as CSV."""

from __future__ import annotations

import csv
import io
import re

from django.contrib.auth.hashers import make_password
from playwright.sync_api import expect

from backend.quality.models import ImageConsensus
from tests.backend.work.people import Class, call, draw, make_class, take
from tests.browser.test_project_panel import PASSWORD, log_in
from tests.live import (  # noqa: F401
    BrowserPage,
    LiveApp,
    browser_marks,
    browser_page_fixture,
    live_app_fixture,
    wait_until,
)

pytestmark = browser_marks(240)


def labelled_class(live_app: LiveApp) -> Class:
    """Students 0 and 1 draw the same square on each set; student 2 adds a second one.
    Returns once the worker has fused both images."""
    room = make_class(students=3, images=2, overlap=3)
    for n, student in enumerate(room.students):
        for _ in room.images:
            mine = take(student, room.project)
            draw(student, mine, y0=5, x0=5)
            if n == 2:
                draw(student, mine, y0=30, x0=40)
            call(student, mine, "activity", {"seconds": 1, "prompts": 3})
            assert call(student, mine, "submit").status_code == 200
    fused = ImageConsensus.objects.filter(image__project=room.project)
    wait_until(lambda: fused.count() == 2, what="both consensus tasks", servers=live_app.servers)
    room.teacher.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    room.teacher.save(update_fields=["password"])
    return room


def test_the_teacher_sees_the_table_the_plots_and_downloads_the_csv(
    live_app: LiveApp, browser_page: BrowserPage
) -> None:
    room = labelled_class(live_app)
    page = browser_page.page
    log_in(browser_page, live_app, room.teacher.username)
    page.goto(f"{live_app.url}projects/{room.project.pk}/")
    page.click("#quality-link")
    page.wait_for_url(f"{live_app.url}projects/{room.project.pk}/quality/")

    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    rows = page.locator("#annotators tbody tr")
    expect(rows).to_have_count(3)
    names = [s.username for s in room.students]
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.username)") == names
    exact = page.locator(f'#annotators tr[data-username="{names[0]}"] td').all_inner_texts()
    assert exact[1:5] == ["2", "0", "0", "2"]  # submitted, accepted, returned, instances
    assert re.fullmatch(r"\d+\.\d", exact[5])  # active minutes (capped by the time that passed)
    assert exact[6] == "3.0"  # prompts per instance
    assert exact[-2:] == ["—", "—"]  # no gold image
    drawn = page.evaluate(
        """() => ["f1-chart", "agreement-chart"].map((id) => {
             const chart = Chart.getChart(document.getElementById(id));
             return chart ? chart.data.datasets.map((d) => d.data) : null;
           })"""
    )
    f1_bars, histogram = drawn
    assert len(f1_bars) == 2 and f1_bars[1] == [None, None, None]  # vs consensus, vs gold
    assert sum(histogram[0]) == 2  # both images have a mean F1
    matrix, days = page.evaluate(
        """() => ["pairs-chart", "throughput-chart"].map((id) => {
             const chart = Chart.getChart(document.getElementById(id));
             return chart ? chart.data.datasets[0].data : null;
           })"""
    )
    assert len(matrix) == 2 * 3  # three pairs of annotators, both halves of the matrix
    assert {(cell["x"], cell["y"]) for cell in matrix} == {
        (a, b) for a in names for b in names if a != b
    }
    assert sum(days) == 6  # three annotators, two images each
    images = page.locator("#images a")
    expect(images).to_have_count(2)
    hrefs = set(images.evaluate_all("links => links.map(a => a.getAttribute('href'))"))
    assert hrefs == {f"/images/{image.pk}/" for image in room.images}

    with page.expect_download() as download:
        page.click("#quality-csv")
    sheet = download.value.path().read_text()
    assert [row["username"] for row in csv.DictReader(io.StringIO(sheet))] == names
    assert browser_page.errors == []
