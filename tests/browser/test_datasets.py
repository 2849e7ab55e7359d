"""A training dataset through the project page in real Chromium, with the
real worker: the owner sees the split, puts every image in train, exports
label images with the images, follows the job, downloads the zip and the
label image reads back (tifffile) as the curated nuclei, and she deletes
the export from the server (its zip goes); then she imports
that zip into another project holding the same image: a check (dry run)
reports what would come, the import brings the same masks."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import tifffile
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from backend.annotations.models import Instance
from backend.annotations.services.instances import instance_create
from backend.datasets.models import Export
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from tests.browser.test_loop import PASSWORD, log_in
from tests.conftest import shared_data
from tests.live import (  # noqa: F401
    BrowserPage,
    LiveApp,
    browser_marks,
    browser_page_fixture,
    live_app_fixture,
)
from worker.datasets.label_image import unpaint

pytestmark = browser_marks(180)


def test_an_owner_splits_exports_and_downloads_a_dataset(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    owner = User.objects.create_user("olivia", password=PASSWORD)
    project = Project.objects.create(name="Nuclei", created_by=owner)
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    nucleus = Label.objects.create(project=project, name="nucleus", order=0)
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    [image] = image_upload(project=project, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    truth = tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))
    for _, mask_rle in unpaint(truth):
        instance_create(image=image, user=owner, label=nucleus, rle=mask_rle)

    page = browser_page.page
    log_in(page, live_app, "olivia")
    page.goto(f"{live_app.url}projects/{project.pk}/")
    card = page.locator("#datasets-card")
    expect(card.locator("#split-summary")).to_contain_text("Images: train")
    # Every image in train: 100 / 0 / 0.
    for name, value in (("train", "100"), ("val", "0"), ("test", "0")):
        card.locator(f"#split-form input[name={name}]").fill(value)
    card.locator("#split-form button[type=submit]").click()
    expect(card.locator("#split-summary")).to_have_text("Images: train 1 · val 0 · test 0")
    # Each image's card shows its split; the owner moves this one to test and back.
    on_card = page.locator(f'li.image-card[data-image-id="{image.pk}"] select.split')
    expect(on_card).to_have_value("train")
    on_card.select_option("test")
    expect(card.locator("#split-summary")).to_have_text(
        "Images: train 0 · val 0 · test 1 (1 set by hand)"
    )
    page.locator(f'li.image-card[data-image-id="{image.pk}"] select.split').select_option("train")
    expect(card.locator("#split-summary")).to_contain_text("Images: train 1 · val 0 · test 0")

    card.locator("#export-form select[name=format]").select_option("labels")
    expect(card.locator("#export-form input[name=polygons]")).to_be_disabled()  # COCO only
    card.locator("#export-form input[name=images]").check()
    card.locator("#export-start").click()
    link = card.locator("#export-list a.export-download")
    expect(link).to_have_count(1, timeout=90_000)
    expect(card.locator("#export-status")).to_have_text("Export ready: download it below.")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "dataset.zip"
    download.value.save_as(saved)

    archive = zipfile.ZipFile(saved)
    labels = tifffile.imread(io.BytesIO(archive.read("labels/train/n.tif")))
    assert labels.dtype == np.uint16 and len(np.unique(labels)) - 1 == len(np.unique(truth)) - 1
    assert np.array_equal(labels > 0, truth > 0)
    pixels = tifffile.imread(io.BytesIO(archive.read("images/train/n.tif")))
    assert pixels.shape == truth.shape
    assert {"provenance.csv", "ro-crate-metadata.json"} <= set(archive.namelist())
    # Downloaded: the owner deletes it from the server (it would expire anyway).
    export = Export.objects.get(project=project)
    assert export.path.exists()
    expect(card.locator("#export-list li")).to_contain_text("kept until")
    card.locator("#export-list button.export-delete").click()
    expect(card.locator("#export-list li")).to_have_count(0)
    assert not Export.objects.filter(pk=export.pk).exists()
    assert not export.path.exists()

    twin = Project.objects.create(name="Twin", created_by=owner)
    Membership.objects.create(project=twin, user=owner, role=Membership.Role.OWNER)
    Label.objects.create(project=twin, name="nucleus", order=0)
    [copy] = image_upload(project=twin, user=owner, files=[SimpleUploadedFile("n.tif", data)])
    page.goto(f"{live_app.url}projects/{twin.pk}/")
    form = page.locator("#import-form")
    form.locator("input[name=file]").set_input_files(str(saved))
    form.locator("select[name=format]").select_option("labels")
    form.locator("#import-check").click()
    report = page.locator("#import-report .import-report")
    expect(report).to_contain_text("Would import 125 instances into 1 image")
    expect(report).to_contain_text("labels/train/n.tif → n.tif: 125 instances (train)")
    assert not Instance.objects.filter(image=copy).exists()  # a check stores nothing
    form.locator("#import-run").click()
    expect(report).to_contain_text("Imported 125 instances into 1 image")
    made = {(i.bbox[0], i.bbox[1], i.area) for i in Instance.objects.filter(image=copy)}
    original = {(i.bbox[0], i.bbox[1], i.area) for i in Instance.objects.filter(image=image)}
    assert made == original
    assert not browser_page.errors, browser_page.errors
