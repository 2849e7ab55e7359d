"""Quality control in real Chromium (issue 14's Done-when): a course with
three students, overlap 3, a gold image mixed into the queue at half the
sets, and feedback on.

Each student's first set is the gold image: they draw, submit, and see their
score and the reference outlines over their own set, which is then final.
"Next image" brings the normal image; all three draw it, and the consensus
of their three sets becomes its curated set: the object all three drew, as
one instance with support 3 of 3. The object only one student drew is below
quorum: the image is disputed and waits in the review queue. The reviewer's
Review next opens it with every set's outlines in its own colour; she picks
the lonely object into the curated set and resolves. The teacher's quality
page shows each student's scores against gold and consensus, draws the four
plots, and downloads the table as CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import Page, expect
from pycocotools import mask as coco_mask
from skimage.draw import polygon as fill_polygon

from backend.annotations.models import Assignment, Instance
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from backend.quality.models import ImageConsensus
from tests.browser.crowd import Person, consensus_of, crowd
from tests.browser.test_loop import PASSWORD, log_in, screen_xy, snap
from tests.browser.test_work_queue import on_set, polygon
from tests.conftest import shared_data
from tests.live import LiveApp, browser_marks, live_app_fixture  # noqa: F401

pytestmark = browser_marks(360)

STUDENTS = ("ana", "ben", "cy")
LEFT = [(60.0, 60.0), (140.0, 60.0), (100.0, 130.0)]
RIGHT = [(300.0, 300.0), (400.0, 300.0), (350.0, 400.0)]
EXTRA = [(200.0, 200.0), (260.0, 200.0), (230.0, 260.0)]
# What each student draws on the gold image (whose truth is LEFT and RIGHT)
# and on the normal one, and their F1 against gold: TP / (TP + FP/2 + FN/2).
GOLD_DRAWN = {"ana": [LEFT, RIGHT], "ben": [LEFT], "cy": [LEFT, RIGHT, EXTRA]}
GOLD_F1 = {"ana": "1.00", "ben": "0.67", "cy": "0.80"}
NORMAL_DRAWN = {"ana": [LEFT], "ben": [LEFT], "cy": [LEFT, RIGHT]}


@pytest.fixture(name="people")
def people_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Person]]:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's loop
    with crowd((*STUDENTS, "rita", "tom")) as found:
        yield found


def a_course() -> tuple[Project, Image, Image]:
    """Teacher tom, reviewer rita, three students; overlap 3, gold share 0.5
    with feedback; a gold image (its truth: LEFT and RIGHT) and a normal one."""
    tom = User.objects.create_user("tom", password=PASSWORD)
    project = Project.objects.create(
        name="Course", created_by=tom, overlap=3, gold_share=0.5, feedback=True
    )
    Membership.objects.create(project=project, user=tom, role=Membership.Role.OWNER)
    rita = User.objects.create_user("rita", password=PASSWORD)
    Membership.objects.create(project=project, user=rita, role=Membership.Role.REVIEWER)
    for name in STUDENTS:
        student = User.objects.create_user(name, password=PASSWORD)
        Membership.objects.create(project=project, user=student, role=Membership.Role.ANNOTATOR)
    label = Label.objects.create(project=project, name="nucleus", color="#ff00ff", order=0)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    files = [SimpleUploadedFile(f"field-{n}.tif", data) for n in (1, 2)]
    gold, normal = sorted(
        image_upload(project=project, user=tom, files=files), key=lambda image: image.pk
    )
    Image.objects.filter(pk=gold.pk).update(gold=True)
    for vertices in (LEFT, RIGHT):
        rle = triangle(vertices, gold.height, gold.width)
        Instance.objects.create(image=gold, label=label, rle=rle, area=1, bbox=[0, 0, 1, 1])
    return project, gold, normal


def triangle(vertices: list[tuple[float, float]], height: int, width: int) -> dict:
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    rows, cols = fill_polygon([y for _, y in vertices], [x for x, _ in vertices], mask.shape)
    mask[rows, cols] = 1
    return {"size": [height, width], "counts": coco_mask.encode(mask)["counts"].decode()}


def annotate(page: Page, app: LiveApp, project: Project, name: str, gold: Image) -> int:
    """The student's gold set, then the normal image: the normal image's id."""
    page.goto(f"{app.url}projects/{project.pk}/")
    page.click("#start-annotating")
    image, _ = on_set(page)
    assert image == gold.pk  # the first set is gold: gold_share 0.5
    for vertices in GOLD_DRAWN[name]:
        polygon(page, vertices)
    page.click("#submit-next")
    # A reference image: the score and the reference outlines, and the set is final.
    expect(page.locator("#gold-score")).to_contain_text(f"F1 {GOLD_F1[name]}")
    expect(page.locator("#gold-feedback")).to_have_attribute("data-loaded", "true")
    expect(page.locator("#reference-note")).to_contain_text("2 outlined")
    expect(page.locator("#read-only-notice")).to_contain_text("your set is final")
    snap(page, f"quality-{name}-gold-feedback")
    leaving = page.url
    page.click("#next-set")
    normal, _ = on_set(page, leaving)
    for vertices in NORMAL_DRAWN[name]:
        polygon(page, vertices)
    page.click("#submit-next")
    page.wait_for_url(re.compile(rf"/projects/{project.pk}/\?done=queue$"))
    return normal


def test_a_course_gets_gold_feedback_consensus_review_and_a_quality_page(
    live_app: LiveApp, people: dict[str, Person]
) -> None:
    project, gold, _ = a_course()
    pages = {name: person.page for name, person in people.items()}
    for name, page in pages.items():
        log_in(page, live_app, name)

    normal = 0
    for name in STUDENTS:
        normal = annotate(pages[name], live_app, project, name, gold)

    # The consensus is the normal image's curated set: the object all three drew.
    record = consensus_of(normal)
    assert (record.sets, record.disputed_clusters, record.disputed) == (3, 1, True)
    curated = list(Instance.objects.filter(image_id=normal, assignment=None))
    assert [(i.origin, i.support) for i in curated] == [("consensus", [3, 3])]
    # Gold was never fused: its truth is as it was.
    assert Instance.objects.filter(image=gold, assignment=None).count() == 2
    assert not ImageConsensus.objects.filter(image=gold).exists()

    # Rita's Review next: the disputed image, every set's outlines in its own colour.
    rita = pages["rita"]
    rita.goto(f"{live_app.url}projects/{project.pk}/")
    rita.click("#review-next")
    rita.wait_for_url(f"{live_app.url}images/{normal}/")
    rita.wait_for_selector('body[data-ready="true"]')
    panel = rita.locator("#dispute-panel")
    expect(panel.locator("h2")).to_have_text("Disputed image")
    expect(panel.locator("#set-legend li")).to_have_count(3)
    colours = panel.locator(".swatch").evaluate_all(
        "nodes => nodes.map(n => getComputedStyle(n).backgroundColor)"
    )
    assert len(set(colours)) == 3
    rows = rita.locator("#instance-list tr[data-instance-id]")
    expect(rows).to_have_count(1)
    snap(rita, "quality-rita-dispute")
    # She picks cy's lonely object into the curated set, and resolves.
    rita.click("#dispute-pick")
    rita.mouse.click(*screen_xy(rita, 350.0, 330.0))
    expect(panel.locator("#dispute-picked")).to_have_text("1 picked.")
    rita.click("#dispute-add")
    expect(rows).to_have_count(2)
    expect(rita.locator("#save-state")).to_have_text("All changes saved")
    rita.click("#dispute-resolve")
    rita.wait_for_url(re.compile(rf"/projects/{project.pk}/\?done=review$"))
    expect(rita.locator("#work-status")).to_have_text("Nothing waits for review.")
    record.refresh_from_db()
    assert (record.disputed, record.resolved_by.username) == (False, "rita")
    picked = Instance.objects.get(image_id=normal, assignment=None, origin="review")
    cy_right = Instance.objects.get(
        assignment__annotator__username="cy", assignment__image_id=normal, pk__in=picked.sources
    )
    assert picked.support == [1, 3] and picked.rle["counts"] == cy_right.rle["counts"]

    # Tom's quality page: scores against gold and consensus, four plots, the CSV.
    tom = pages["tom"]
    tom.goto(f"{live_app.url}projects/{project.pk}/quality/")
    expect(tom.locator("body")).to_have_attribute("data-ready", "true")
    table = tom.locator("#annotators tbody tr")
    expect(table).to_have_count(3)
    for name in STUDENTS:
        cells = tom.locator(f'#annotators tr[data-username="{name}"] td').all_inner_texts()
        assert cells[-2] == GOLD_F1[name], (name, cells)  # F1 against gold
        assert cells[1] == "2"  # submitted: the gold set and the normal one
    consensus_f1 = tom.locator('#annotators tr[data-username="cy"] td').all_inner_texts()[-4]
    assert consensus_f1 == "0.67"  # cy's extra object is not in the consensus
    drawn = tom.evaluate(
        """() => ["f1-chart", "agreement-chart", "pairs-chart", "throughput-chart"]
             .map((id) => Chart.getChart(document.getElementById(id)) !== undefined)"""
    )
    assert drawn == [True, True, True, True]
    expect(tom.locator("#images a")).to_have_count(1)
    with tom.expect_download() as download:
        tom.click("#quality-csv")
    sheet = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [row["username"] for row in sheet] == list(STUDENTS)
    assert [f"{float(row['f1_gold']):.2f}" for row in sheet] == [GOLD_F1[n] for n in STUDENTS]
    assert Assignment.objects.filter(image__project=project, status="submitted").count() == 6
