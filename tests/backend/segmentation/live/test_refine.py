"""Refine: a saved instance reopened as the object in progress, over the
WebSocket (Channels' communicator, the real ASGI app, the classical engine),
and the mask-input helpers of worker/engines/mask_input.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from scipy import ndimage

from backend.annotations.models import Assignment, Instance
from backend.annotations.services.instances import instance_create, instance_delete
from backend.images.models import Image
from backend.images.services import image_upload
from backend.projects.models import Label, Membership, Project
from backend.segmentation.compute import embedding_compute
from backend.segmentation.models import Embedding
from tests.conftest import shared_data
from tests.ws_fixtures import connect, receive_until, session_headers
from worker import rle
from worker.engines.base import EmbeddingSet, Prompt, Tile
from worker.engines.mask_input import (
    REFINE_LOGIT,
    decode_refining,
    mask_to_previous,
    sam_mask_logits,
    uses_mask_input,
)
from worker.engines.sam.masks import upsample_region
from worker.engines.spec import EngineSpec

pytestmark = pytest.mark.django_db(transaction=True)


# --- fixtures ---------------------------------------------------------------


@pytest.fixture
def labels() -> np.ndarray:
    return tifffile.imread(shared_data("nuclei_dsb2018/labels.tif"))


def uploaded(project: Project, user: User, name: str) -> Image:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    upload = SimpleUploadedFile(name, data, content_type="image/tiff")
    [image] = image_upload(project=project, user=user, files=[upload])
    embedding = Embedding.objects.get(image=image)
    embedding_compute(embedding_id=embedding.pk)
    embedding.refresh_from_db()
    assert embedding.status == Embedding.Status.READY, embedding.error
    return image


@pytest.fixture
def ready_image(project: Project, owner: User) -> Image:
    return uploaded(project, owner, "nuclei.tif")


def big_isolated_nucleus(labels: np.ndarray) -> int:
    """A large nucleus away from the border and from the others."""
    areas = np.bincount(labels.ravel())
    for index in np.argsort(areas)[::-1]:
        if index == 0 or areas[index] > 3000:
            continue
        nucleus = labels == index
        ys, xs = np.nonzero(nucleus)
        if ys.min() < 10 or xs.min() < 10 or ys.max() > 500 or xs.max() > 500:
            continue
        around = ndimage.binary_dilation(nucleus, iterations=4)
        if np.all((labels[around] == 0) | (labels[around] == index)):
            return int(index)
    raise AssertionError("no isolated nucleus")


def left_part(nucleus: np.ndarray) -> np.ndarray:
    """The left third of a nucleus."""
    xs = np.nonzero(nucleus)[1]
    cut = xs.min() + (xs.max() - xs.min()) // 3
    part = nucleus.copy()
    part[:, cut:] = False
    return part


def deepest(mask: np.ndarray) -> tuple[int, int]:
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def save(image: Image, user: User, mask: np.ndarray) -> Instance:
    label = Label.objects.filter(project=image.project).first()
    assert label is not None
    encoded = rle.encode_crop(mask, 0, 0, image.height, image.width)
    return instance_create(image=image, user=user, label=label, rle=encoded)


async def exchange(
    communicator: WebsocketCommunicator, message: dict[str, Any], kind: str = "mask"
) -> dict[str, Any]:
    await communicator.send_json_to(message)
    reply = await receive_until(communicator, kind)
    return reply


# --- over the socket ------------------------------------------------------------


def test_refine_returns_the_instance_mask_and_clicks_refine_from_it(
    ready_image: Image, owner: User, member: User, labels: np.ndarray
) -> None:
    nucleus = labels == big_isolated_nucleus(labels)
    part = left_part(nucleus)
    instance = save(ready_image, owner, part)
    click = deepest(nucleus & ~part)
    headers = session_headers(member)

    async def run() -> list[dict[str, Any]]:
        communicator = await connect(ready_image.pk, headers)
        reopened = await exchange(
            communicator, {"type": "refine", "request_id": 3, "instance_id": instance.pk}
        )
        refined = await exchange(
            communicator, {"type": "prompt", "request_id": 4, "points": [[*click, 1]]}
        )
        await communicator.disconnect()
        return [reopened, refined]

    reopened, refined = asyncio.run(run())
    assert reopened["request_id"] == 3
    assert np.array_equal(rle.decode(reopened["rle"]), part)
    grown = rle.decode(refined["rle"])
    assert refined["request_id"] == 4
    assert (grown & part).sum() == part.sum(), "the refined mask lost the saved part"
    assert (grown & nucleus).sum() > 1.5 * part.sum(), "the click did not add the rest"


def test_a_negative_click_takes_out_of_the_reopened_mask(
    ready_image: Image, owner: User, member: User, labels: np.ndarray
) -> None:
    first = labels == big_isolated_nucleus(labels)
    other = [int(v) for v in np.unique(labels) if v and not np.any(first & (labels == v))][5]
    both = first | (labels == other)
    instance = save(ready_image, owner, both)
    headers = session_headers(member)

    async def run() -> np.ndarray:
        communicator = await connect(ready_image.pk, headers)
        await exchange(
            communicator, {"type": "refine", "request_id": 1, "instance_id": instance.pk}
        )
        x, y = deepest(labels == other)
        reply = await exchange(
            communicator, {"type": "prompt", "request_id": 2, "points": [[x, y, 0]]}
        )
        await communicator.disconnect()
        return rle.decode(reply["rle"])

    mask = asyncio.run(run())
    assert (mask & first).sum() == first.sum()
    assert (mask & (labels == other)).sum() < 0.2 * (labels == other).sum()


def test_reset_forgets_the_reopened_mask(
    ready_image: Image, owner: User, member: User, labels: np.ndarray
) -> None:
    nucleus = labels == big_isolated_nucleus(labels)
    elsewhere = np.zeros_like(nucleus)
    elsewhere[2:8, 2:8] = True  # a corner square no click reaches
    instance = save(ready_image, owner, elsewhere)
    click = deepest(nucleus)
    headers = session_headers(member)

    async def run() -> list[np.ndarray]:
        communicator = await connect(ready_image.pk, headers)
        masks = []
        await exchange(
            communicator, {"type": "refine", "request_id": 1, "instance_id": instance.pk}
        )
        reply = await exchange(
            communicator, {"type": "prompt", "request_id": 2, "points": [[*click, 1]]}
        )
        masks.append(rle.decode(reply["rle"]))
        await communicator.send_json_to({"type": "reset"})
        reply = await exchange(
            communicator, {"type": "prompt", "request_id": 3, "points": [[*click, 1]]}
        )
        masks.append(rle.decode(reply["rle"]))
        await communicator.disconnect()
        return masks

    refined, fresh = asyncio.run(run())
    assert refined[4, 4] and refined[click[1], click[0]]
    assert not fresh[4, 4] and fresh[click[1], click[0]]


def test_other_images_outsiders_and_deleted_instances_leak_nothing(
    ready_image: Image, project: Project, owner: User, member: User, outsider: User
) -> None:
    square = np.zeros((ready_image.height, ready_image.width), dtype=bool)
    square[100:140, 100:140] = True
    sibling = save(uploaded(project, owner, "sibling.tif"), owner, square)
    secret_project = Project.objects.create(name="Secret", created_by=outsider)
    Membership.objects.create(project=secret_project, user=outsider, role=Membership.Role.OWNER)
    Label.objects.create(project=secret_project, name="secret", color="#123456", order=0)
    secret = save(uploaded(secret_project, outsider, "secret.tif"), outsider, square)
    deleted = save(ready_image, owner, square)
    instance_delete(instance=deleted, user=owner)
    missing = max(sibling.pk, secret.pk, deleted.pk) + 100
    headers = session_headers(member)

    async def run() -> list[dict[str, Any]]:
        communicator = await connect(ready_image.pk, headers)
        replies = []
        for rid, instance_id in enumerate([sibling.pk, secret.pk, deleted.pk, missing], start=1):
            message = {"type": "refine", "request_id": rid, "instance_id": instance_id}
            replies.append(await exchange(communicator, message, "error"))
        # Nothing was reopened: a negative click alone segments nothing.
        await communicator.send_json_to(
            {"type": "prompt", "request_id": 9, "points": [[400, 20, 0]]}
        )
        replies.append(await receive_until(communicator, "mask"))
        assert communicator.output_queue.empty()
        await communicator.disconnect()
        return replies

    *errors, after = asyncio.run(run())
    assert [e["request_id"] for e in errors] == [1, 2, 3, 4]
    assert {e["message"] for e in errors} == {"no such instance on this image"}
    assert not rle.decode(after["rle"]).any()


def test_a_set_hidden_by_blind_mode_or_outside_the_named_set_is_not_reopened(
    ready_image: Image, project: Project, owner: User, member: User
) -> None:
    square = np.zeros((ready_image.height, ready_image.width), dtype=bool)
    square[100:140, 100:140] = True
    label = Label.objects.filter(project=project).first()
    encoded = rle.encode_crop(square, 0, 0, ready_image.height, ready_image.width)
    curated = save(ready_image, owner, square)
    Project.objects.filter(pk=project.pk).update(overlap=2, blind=True)
    theirs = Assignment.objects.create(image=ready_image, annotator=owner)
    mine = Assignment.objects.create(image=ready_image, annotator=member)
    hidden = instance_create(
        image=ready_image, user=owner, label=label, rle=encoded, assignment=theirs
    )
    own = instance_create(image=ready_image, user=member, label=label, rle=encoded, assignment=mine)
    headers = session_headers(member)

    async def run() -> list[dict[str, Any]]:
        communicator = await connect(ready_image.pk, headers)
        replies = []
        asks = [(hidden.pk, None), (curated.pk, None), (own.pk, theirs.pk), (own.pk, mine.pk)]
        for rid, (instance_id, assignment) in enumerate(asks, start=1):
            message = {"type": "refine", "request_id": rid, "instance_id": instance_id}
            message["assignment"] = assignment
            replies.append(await exchange(communicator, message, "error" if rid < 4 else "mask"))
        await communicator.disconnect()
        return replies

    *errors, reopened = asyncio.run(run())
    assert {e["message"] for e in errors} == {"no such instance on this image"}
    assert rle.decode(reopened["rle"])[120, 120]


@pytest.mark.parametrize("instance_id", [None, "7", 0, -3, True, 1.5])
def test_a_bad_instance_id_gets_a_clear_error(
    ready_image: Image, member: User, instance_id: Any
) -> None:
    headers = session_headers(member)

    async def run() -> dict[str, Any]:
        communicator = await connect(ready_image.pk, headers)
        reply = await exchange(
            communicator, {"type": "refine", "request_id": 5, "instance_id": instance_id}, "error"
        )
        await communicator.disconnect()
        return reply

    reply = asyncio.run(run())
    assert reply["request_id"] == 5
    assert "instance_id" in reply["message"]


def test_refine_waits_for_the_embedding(project: Project, owner: User, member: User) -> None:
    data = shared_data("nuclei_dsb2018/image.tif").read_bytes()
    upload = SimpleUploadedFile("pending.tif", data, content_type="image/tiff")
    [image] = image_upload(project=project, user=owner, files=[upload])
    square = np.zeros((image.height, image.width), dtype=bool)
    square[10:20, 10:20] = True
    instance = save(image, owner, square)
    headers = session_headers(member)

    async def run() -> dict[str, Any]:
        communicator = await connect(image.pk, headers)
        message = {"type": "refine", "request_id": 2, "instance_id": instance.pk}
        reply = await exchange(communicator, message, "error")
        await communicator.disconnect()
        return reply

    assert "not ready" in asyncio.run(run())["message"]


# --- the mask input ---------------------------------------------------------------


def sam_embedding(height: int, width: int) -> EmbeddingSet:
    scale = 1024 / max(height, width)
    input_size = [round(height * scale), round(width * scale)]
    return EmbeddingSet(
        engine_key="sam-test",
        image_height=height,
        image_width=width,
        tiles=[Tile(0, 0, width, height)],
        arrays=[np.zeros((256, 64, 64), dtype=np.float16)],
        meta={"input_size": input_size, "original_size": [height, width], "model_size": 1024},
    )


def disc(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return np.asarray((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)


@pytest.mark.parametrize(("height", "width"), [(512, 512), (395, 695), (900, 300)])
def test_sam_logits_of_a_mask_upsample_back_to_it(height: int, width: int) -> None:
    embedding = sam_embedding(height, width)
    mask = disc(height, width, width * 0.4, height * 0.6, min(height, width) / 5)
    previous = mask_to_previous(embedding, mask)
    assert previous.logits is not None and previous.logits.shape == (1, 256, 256)
    h_model, w_model = (int(v) for v in embedding.meta["input_size"])  # type: ignore[attr-defined]
    input_size = (h_model, w_model)
    low_h, low_w = -(-input_size[0] // 4), -(-input_size[1] // 4)
    logits = previous.logits[0]
    # Saturated inside and outside, zero over the padding, as micro-sam makes them.
    assert logits.max() == pytest.approx(REFINE_LOGIT, rel=1e-3)
    assert logits[:low_h, :low_w].min() == pytest.approx(-REFINE_LOGIT, rel=1e-3)
    assert not logits[low_h:, :].any() and not logits[:, low_w:].any()
    crop, x0, y0 = upsample_region(logits, input_size, (height, width))
    back = np.zeros_like(mask)
    back[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    assert (back & mask).sum() / (back | mask).sum() > 0.95
    assert np.array_equal(previous.mask_crop, mask[np.ix_(mask.any(1), mask.any(0))])


def test_a_tiled_embedding_gets_logits_of_the_tile_holding_the_mask() -> None:
    tiles = [Tile(0, 0, 3000, 3000), Tile(0, 0, 1024, 1024), Tile(768, 0, 1024, 1024)]
    tile_meta = [{"input_size": [1024, 1024], "original_size": [t.height, t.width]} for t in tiles]
    embedding = EmbeddingSet(
        engine_key="sam-test",
        image_height=3000,
        image_width=3000,
        tiles=tiles,
        arrays=[np.zeros((256, 64, 64), dtype=np.float16)] * 3,
        meta={"tiling": {"overview": 0}, "tile_meta": tile_meta},
    )
    assert uses_mask_input(embedding)
    inside_second = disc(3000, 3000, 1300, 500, 40)
    previous = mask_to_previous(embedding, inside_second)
    assert previous.tile_index == 2
    assert previous.logits is not None
    expected = sam_mask_logits(inside_second[0:1024, 768:1792], (1024, 1024))
    assert np.array_equal(previous.logits, expected)
    nowhere = disc(3000, 3000, 2500, 2500, 40)  # outside every native tile
    assert mask_to_previous(embedding, nowhere).tile_index == 0


def test_the_classical_engine_gets_the_mask_alone() -> None:
    embedding = EmbeddingSet(
        engine_key="classical-1",
        image_height=64,
        image_width=80,
        tiles=[Tile(0, 0, 80, 64)],
        arrays=[np.zeros((64, 80), dtype=np.float16)],
        meta={"sigma": 1.0},
    )
    mask = disc(64, 80, 30, 20, 6)
    previous = mask_to_previous(embedding, mask)
    assert not uses_mask_input(embedding)
    assert previous.logits is None
    assert (previous.x0, previous.y0) == (24, 14)
    assert previous.mask_crop.sum() == mask.sum()


def test_sam_refines_from_the_mask_input_as_sam_predictor_does(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The reopened mask reaches SAM's decoder as SamPredictor's `mask_input` would."""
    import torch
    from segment_anything import SamPredictor

    from tests.tiny_sam import build_tiny_sam, save_tiny_checkpoint, synthetic_cells
    from worker.engines.sam.engine import SamEngine

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster on a small shared machine
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pth")
    spec = EngineSpec(name="tiny", arch="custom", checkpoint_path=str(checkpoint), sha256="cd" * 32)
    engine = SamEngine(spec, backend="torch")
    image = synthetic_cells((300, 420))
    embedding = engine.embed(image)
    saved = disc(300, 420, 150, 120, 30)
    previous = mask_to_previous(embedding, saved)
    assert previous.logits is not None
    click = Prompt(points_xy_image=((160.0, 125.0, 1),))
    result = decode_refining(engine, embedding, click, previous, previous)

    predictor = SamPredictor(build_tiny_sam())  # the checkpoint's weights
    predictor.set_image(image)
    masks, _, _ = predictor.predict(
        np.array([[160.0, 125.0]]),
        np.array([1]),
        mask_input=previous.logits,
        multimask_output=False,
    )
    got = np.zeros(saved.shape, dtype=bool)
    h, w = result.mask_crop.shape
    got[result.y0 : result.y0 + h, result.x0 : result.x0 + w] = result.mask_crop
    want = masks[0]
    assert (got & want).sum() / max((got | want).sum(), 1) >= 0.98
