"""planes_to_rgb8: the channel-to-RGB mapping the display and the model share."""

from __future__ import annotations

import numpy as np
import pytest

from backend.images.rendering import (
    default_mapping,
    mapping_from_settings,
    planes_to_rgb8,
    stretch_to_uint8,
)


def test_8_bit_rgb_passes_through_unchanged() -> None:
    planes = np.random.default_rng(0).integers(0, 255, (3, 5, 6), dtype=np.uint8)
    rgb = planes_to_rgb8(planes)
    assert rgb.shape == (5, 6, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, np.moveaxis(planes, 0, -1))


def test_one_channel_is_grey() -> None:
    planes = np.arange(100, dtype=np.uint16).reshape(1, 10, 10) * 50
    rgb = planes_to_rgb8(planes)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_two_channels_are_red_and_green() -> None:
    planes = np.zeros((2, 4, 4), dtype=np.uint16)
    planes[0, 0, 0] = planes[1, 3, 3] = 1000
    rgb = planes_to_rgb8(planes)
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[3, 3].tolist() == [0, 255, 0]
    assert not rgb[..., 2].any()


def test_channels_beyond_the_third_are_hidden_by_default() -> None:
    planes = np.zeros((4, 2, 2), dtype=np.uint16)
    planes[3] = np.array([[0, 10], [20, 30]])
    assert not planes_to_rgb8(planes).any()
    shown = planes_to_rgb8(planes, [3, None, None])
    assert shown[..., 0].max() == 255 and not shown[..., 1:].any()


def test_each_channel_is_stretched_independently() -> None:
    rng = np.random.default_rng(1)
    dim = rng.integers(100, 200, (64, 64)).astype(np.uint16)
    bright = rng.integers(10_000, 60_000, (64, 64)).astype(np.uint16)
    rgb = planes_to_rgb8(np.stack([dim, bright, dim]))
    for colour in range(3):
        assert rgb[..., colour].min() == 0 and rgb[..., colour].max() == 255


def test_stretch_uses_the_half_percent_percentiles() -> None:
    values = np.arange(1000, dtype=np.float32).reshape(1, 10, 100)
    lo, hi = np.percentile(values, [0.5, 99.5])
    out = stretch_to_uint8(values[0])
    expected = np.rint(np.clip((values[0] - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0] == 0 and out[-1, -1] == 255  # outliers clip


def test_a_sparse_channel_still_shows_its_bright_pixels() -> None:
    plane = np.zeros((100, 100), dtype=np.uint16)
    plane[0, :5] = 4000  # fewer than 0.5 % of pixels: the percentiles are both 0
    out = stretch_to_uint8(plane)
    assert out[0, :5].tolist() == [255] * 5 and out.sum() == 5 * 255


def test_a_constant_channel_is_black() -> None:
    assert not planes_to_rgb8(np.full((1, 4, 4), 4660, dtype=np.uint16)).any()


def test_signed_and_float_planes_render() -> None:
    signed = np.array([[-1000, 0], [1000, 32767]], dtype=np.int16)[np.newaxis]
    floats = np.array([[np.nan, -0.5], [0.25, 3.0]], dtype=np.float32)[np.newaxis]
    red = planes_to_rgb8(signed)[..., 0].ravel().tolist()
    assert red[0] == 0 and red[-1] == 255 and red == sorted(red)
    rgb = planes_to_rgb8(floats)
    assert rgb[0, 0, 0] == 0 and rgb[1, 1, 0] == 255


def test_grey_8_bit_is_stretched() -> None:
    plane = np.array([[10, 20], [30, 40]], dtype=np.uint8)[np.newaxis]
    assert planes_to_rgb8(plane)[..., 0].tolist() == [[0, 85], [170, 255]]


def test_large_planes_use_a_subsample() -> None:
    plane = np.random.default_rng(2).integers(0, 65535, (1, 2048, 1500), dtype=np.uint16)
    rgb = planes_to_rgb8(plane)
    assert rgb.shape == (2048, 1500, 3)


@pytest.mark.parametrize(
    ("channels", "mapping"), [(1, [0, 0, 0]), (2, [0, 1, None]), (3, [0, 1, 2]), (5, [0, 1, 2])]
)
def test_default_mapping(channels: int, mapping: list) -> None:
    assert default_mapping(channels) == mapping


@pytest.mark.parametrize("mapping", [[0, 1], [0, 1, 5], ["0", 1, 2], [True, 0, 0], "rgb"])
def test_it_refuses_a_bad_mapping(mapping: object) -> None:
    with pytest.raises(ValueError):
        planes_to_rgb8(np.zeros((3, 2, 2), np.uint16), mapping)  # type: ignore[arg-type]


def test_a_project_mapping_that_does_not_fit_falls_back_to_the_default() -> None:
    assert mapping_from_settings({"channel_mapping": [2, 1, 0]}, 3) == [2, 1, 0]
    assert mapping_from_settings({"channel_mapping": [2, 1, 0]}, 2) is None
    assert mapping_from_settings({}, 2) is None


def test_it_refuses_planes_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="planes must be"):
        planes_to_rgb8(np.zeros((4, 4), np.uint8))
