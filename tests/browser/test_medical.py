"""Medical images in real Chromium: a CT series (slices made from the real
CT slice of ../shared/data/medical, sent as several files through the upload
form) and a NIfTI volume become stacks; the window presets and the free
level and width show the Hounsfield units as expected (checked on
screenshot pixels); the owner sets the window the model sees. Then the
clinician's loop: box the spinal canal, propagate it through the series,
correct one slice with the eraser, export a DICOM SEG and a NIfTI through
the project page, and read both back (highdicom, nibabel): voxel for voxel
the saved masks."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect
from pydicom.uid import generate_uid
from scipy import ndimage
from scipy.ndimage import uniform_filter

from backend.annotations.models import Instance
from backend.images.models import Image, ImageStack
from backend.images.rendering import image_planes
from backend.images.storage import original_files
from backend.projects.models import Label, Membership, Project
from tests.browser.test_channels import wait_for_colour
from tests.browser.test_loop import PASSWORD, decode, interior_point, log_in, snap
from tests.browser.test_tools import click, drag, eventually, server_mask_when, use_tool
from tests.conftest import shared_data
from tests.live import BrowserPage, LiveApp, browser_marks, browser_page_fixture, live_app_fixture  # noqa: F401
from worker.datasets.dicom_seg import source_uids
from worker.metrics import iou

pytestmark = browser_marks(180, array_warning=True)

WINDOWS = {"Lung": (-1350.0, 150.0), "Soft tissue": (-160.0, 240.0), "Bone": (-500.0, 1300.0)}


def ct_series(folder: Path, count: int) -> list[Path]:
    """`count` slices 2.5 mm apart, written in reverse order of position."""
    paths = []
    series = generate_uid()
    for i in range(count):
        dataset = pydicom.dcmread(shared_data("medical/CT_small.dcm"))
        x, y, z = (float(v) for v in dataset.ImagePositionPatient)
        dataset.ImagePositionPatient = [x, y, z + 2.5 * i]
        dataset.SeriesInstanceUID = series
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        path = folder / f"IM{count - i:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def owner_with_project(username: str) -> Project:
    user = User.objects.create_user(username, password=PASSWORD)
    project = Project.objects.create(name="Abdomen CT", created_by=user)
    Membership.objects.create(project=project, user=user, role=Membership.Role.OWNER)
    Label.objects.create(project=project, name="liver", color="#ff6600", order=0)
    return project


def flat_points(hu: np.ndarray) -> dict[str, tuple[int, int]]:
    """An image point (x, y) in air and one in soft tissue, where the 7 x 7
    neighbourhood is nearly uniform (a screenshot patch averages it)."""
    values = hu.astype(np.float64)
    spread = np.sqrt(np.maximum(uniform_filter(values**2, 7) - uniform_filter(values, 7) ** 2, 0))
    inner = np.zeros(hu.shape, bool)
    inner[8:-8, 8:-8] = True
    points = {}
    for name, (low, high) in {"air": (-1100, -700), "soft": (0, 80)}.items():
        candidates = inner & (values >= low) & (values <= high)
        ys, xs = np.nonzero(candidates)
        best = int(np.argmin(spread[ys, xs]))
        points[name] = (int(xs[best]), int(ys[best]))
    return points


def grey_through(hu: float, window: tuple[float, float]) -> tuple[int, int, int]:
    low, high = window
    value = round(float(np.clip((hu - low) / (high - low), 0, 1)) * 255)
    return (value, value, value)


def upload_files(page: Page, app: LiveApp, project: Project, paths: list[Path]) -> None:
    page.goto(f"{app.url}projects/{project.pk}/")
    page.set_input_files("#upload input[name=file]", [str(p) for p in paths])
    page.click("#upload button[type=submit]")
    expect(page.locator("#upload .done")).not_to_be_empty(timeout=60_000)


def series_uploaded(
    app: LiveApp, page: Page, tmp_path: Path, username: str
) -> tuple[Project, ImageStack]:
    """An owner logged in, who uploaded the folder of a CT series of 5 slices
    through the page (its DICOMDIR and a hidden file are left out)."""
    project = owner_with_project(username)
    log_in(page, app, username)
    folder = tmp_path / "SERIES"
    folder.mkdir()
    ct_series(folder, 5)
    (folder / "DICOMDIR").write_bytes(b"an index, not an image")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    page.goto(f"{app.url}projects/{project.pk}/")
    page.set_input_files("#upload input[name=folder]", folder)
    page.click("#upload button[type=submit]")
    expect(page.locator("#upload .done")).to_have_text(
        "Uploaded 1 image (5 planes).", timeout=60_000
    )
    return project, ImageStack.objects.get(project=project)


def test_a_ct_series_through_the_window_presets_and_a_nifti_volume(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    page = browser_page.page
    project, stack = series_uploaded(live_app, page, tmp_path, "rhea")
    assert stack.shape == {"T": 1, "Z": 5} and "a series of 5 slices 2.5 mm apart" in stack.note
    plane = Image.objects.get(stack=stack, z=2)
    hu = image_planes(plane)[0]
    points = flat_points(hu)

    page.goto(f"{live_app.url}images/{plane.pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    bar = page.locator("#window-bar")
    expect(bar).to_be_visible()
    for name, window in WINDOWS.items():
        bar.get_by_role("button", name=name, exact=True).click()
        for x, y in points.values():
            mean_hu = float(hu[y - 1 : y + 2, x - 1 : x + 2].mean())
            wait_for_colour(page, (x + 0.5, y + 0.5), grey_through(mean_hu, window), tolerance=10)
        snap(page, f"ct-window-{name.lower().replace(' ', '-')}")
    # a free level and width: L 40, W 80 (the brain window) typed in
    bar.locator("input.window-level").fill("40")
    bar.locator("input.window-level").press("Enter")
    bar.locator("input.window-width").fill("80")
    bar.locator("input.window-width").press("Enter")
    x, y = points["soft"]
    mean_hu = float(hu[y - 1 : y + 2, x - 1 : x + 2].mean())
    wait_for_colour(page, (x + 0.5, y + 0.5), grey_through(mean_hu, (0, 80)), tolerance=10)

    # the owner has the model see the soft-tissue window
    page.goto(f"{live_app.url}projects/{project.pk}/")
    card = page.locator("#mapping-card")
    card.locator("select.model-window").select_option("soft-tissue")
    page.once("dialog", lambda dialog: dialog.accept())
    card.locator("button[type=submit]").click()
    expect(card.locator(".mapping-summary")).to_contain_text("window Soft tissue (L 40, W 400)")
    project.refresh_from_db()
    assert project.settings["model_window"]["preset"] == "soft-tissue"

    # a NIfTI volume: a stack of axial slices with the same window bar
    upload_files(page, live_app, project, [shared_data("medical/example_ct_sm.nii.gz")])
    volume = ImageStack.objects.exclude(pk=stack.pk).get(project=project)
    assert volume.plane_count > 1 and "NIfTI" in volume.note
    middle = Image.objects.get(stack=volume, z=volume.plane_count // 2)
    page.goto(f"{live_app.url}images/{middle.pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#model-mapping")).to_contain_text("window Soft tissue")
    page.locator("#window-bar").get_by_role("button", name="Bone", exact=True).click()
    volume_hu = image_planes(middle)[0]
    x, y = flat_points(volume_hu)["soft"]
    mean_hu = float(volume_hu[y - 1 : y + 2, x - 1 : x + 2].mean())
    wait_for_colour(page, (x + 0.5, y + 0.5), grey_through(mean_hu, WINDOWS["Bone"]), tolerance=10)
    snap(page, "nifti-bone-window")
    assert browser_page.errors == []


def export_through_the_page(
    page: Page, app: LiveApp, project: Project, fmt: str, path: Path
) -> zipfile.ZipFile:
    page.goto(f"{app.url}projects/{project.pk}/")
    card = page.locator("#datasets-card")
    card.locator("#export-form select[name=format]").select_option(fmt)
    card.locator("#export-start").click()
    link = card.locator("#export-list li", has_text=fmt).locator("a.export-download")
    expect(link).to_have_count(1, timeout=90_000)
    with page.expect_download() as download:
        link.click()
    download.value.save_as(path)
    return zipfile.ZipFile(path)


def saved_masks(planes: list[Image]) -> dict[int, np.ndarray]:
    """Each plane's curated masks, unioned (one label here)."""
    found = {}
    for plane in planes:
        masks = [decode(i.rle) for i in Instance.objects.filter(image=plane, assignment=None)]
        found[plane.z] = (
            np.any(masks, axis=0) if masks else np.zeros((plane.height, plane.width), bool)
        )
    return found


def test_box_an_organ_propagate_it_correct_a_slice_and_export(
    live_app: LiveApp, browser_page: BrowserPage, tmp_path: Path
) -> None:
    page = browser_page.page
    project, stack = series_uploaded(live_app, page, tmp_path, "ines")
    planes = list(Image.objects.filter(stack=stack).order_by("z"))
    hu = image_planes(planes[2])[0]
    # the spinal canal: the soft tissue held by the vertebra, around (60, 53)
    dark, _ = ndimage.label(ndimage.binary_opening(hu < 100))
    canal = dark == dark[53, 60]
    ys, xs = np.nonzero(canal)
    assert 200 < canal.sum() < 600

    page.goto(f"{live_app.url}images/{planes[2].pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    expect(page.locator("#status-banner")).to_have_attribute("data-status", "ready", timeout=60_000)
    use_tool(page, "p", "prompt")
    # from the bottom right: the stack's sliders lie over the top of the image
    drag(
        page,
        [(float(xs.max()) + 3, float(ys.max()) + 3), (float(xs.min()) - 2, float(ys.min()) - 2)],
    )
    page.wait_for_function("() => window.maskroom.promptSession.mask !== null", timeout=30_000)
    page.keyboard.press("Enter")
    source = eventually(lambda: Instance.objects.filter(image=planes[2]).first(), "the boxed organ")
    assert iou(decode(source.rle), canal) > 0.5

    use_tool(page, "v", "select")
    click(page, *interior_point(decode(source.rle)))
    page.wait_for_function("id => window.maskroom.instances.selected.has(id)", arg=source.pk)
    panel = page.locator("#propagate")
    panel.get_by_role("button", name="Both").click()
    expect(panel).to_have_attribute("data-status", "done", timeout=90_000)
    expect(panel.locator(".propagate-status")).to_contain_text("Propagated to 4 planes")
    snap(page, "propagated")
    source.refresh_from_db()
    copies = Instance.objects.filter(object_key=source.object_key).exclude(pk=source.pk)
    assert sorted(c.image.z for c in copies) == [0, 1, 3, 4]

    # correct one slice: an eraser stroke down the middle of the copy on plane 3
    corrected = copies.get(image=planes[3])
    before = decode(corrected.rle)
    page.goto(f"{live_app.url}images/{planes[3].pk}/")
    page.wait_for_selector('body[data-ready="true"]')
    use_tool(page, "v", "select")
    click(page, *interior_point(before))
    page.wait_for_function("id => window.maskroom.instances.selected.has(id)", arg=corrected.pk)
    use_tool(page, "e", "eraser")
    cx = float(np.argwhere(before)[:, 1].mean())
    drag(page, [(cx, float(ys.min()) - 4), (cx, float(ys.max()) + 4)])
    server_mask_when(
        page, live_app, corrected.pk, lambda m: m.sum() < before.sum(), "the correction"
    )

    masks = saved_masks(planes)
    seg_zip = export_through_the_page(page, live_app, project, "dicom-seg", tmp_path / "seg.zip")
    [name] = [n for n in seg_zip.namelist() if n.endswith(".seg.dcm")]
    seg = hd.seg.segread(io.BytesIO(seg_zip.read(name)))
    uids = source_uids(original_files(planes[0].original_path))
    for z, uid in enumerate(uids):
        frame = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[uid], segment_numbers=[1]
        )
        np.testing.assert_array_equal(frame[0, ..., 0].astype(bool), masks[z], err_msg=f"z={z}")
    nifti_zip = export_through_the_page(page, live_app, project, "nifti", tmp_path / "nifti.zip")
    [name] = [n for n in nifti_zip.namelist() if n.endswith(".nii.gz")]
    volume = np.asanyarray(
        nib.Nifti1Image.from_bytes(gzip.decompress(nifti_zip.read(name))).dataobj
    )
    for z, mask in masks.items():
        np.testing.assert_array_equal(volume[:, :, z].T > 0, mask, err_msg=f"z={z}")
    assert len(np.unique(volume[volume > 0])) == 1  # one 3D object, one value
    assert browser_page.errors == []
