"""Guided upsampling (hybrid.neural.upsample): edges the exact buffers know stay sharp at full resolution.

Each case has an answer known by construction: a low-resolution image that is constant
on each object must come back constant on each object's full-resolution pixels, however
the object's edge falls between low pixels. Plain bilinear enlargement, checked
alongside, misses that by a large margin, so the cases can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.neural.conditioning import resize_nearest
from hybrid.neural.upsample import GuideScales, detail_transfer, guide_channels, joint_bilateral_upsample


def _bilinear(low: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch

    return torch.nn.functional.interpolate(torch.from_numpy(low), size=size, mode="bilinear", align_corners=False).numpy()


def _two_objects(height: int, width: int, edge: int, frames: int = 2) -> dict[str, np.ndarray]:
    """Object 1 left of column `edge`, object 2 from it on; equal albedo, normal and depth (only ids tell them apart)."""
    instance = np.where(np.arange(width)[None, None, :] < edge, 1, 2) * np.ones((frames, height, 1), np.int64)
    return {
        "instance": instance.astype(np.uint16),
        "albedo": np.full((frames, height, width, 3), 128, np.uint8),
        "normal": np.tile(np.array([0, 0, -1], np.float32), (frames, height, width, 1)),
        "depth": np.full((frames, height, width), 2.0, np.float32),
    }


@pytest.mark.parametrize("full, low, edge", [((64, 64), (16, 16), 37), ((45, 80), (15, 16), 41), ((36, 64), (9, 16), 30)])
def test_an_instance_edge_stays_sharp(full, low, edge):
    """Value a on object 1 and b on object 2 at low resolution -> exactly a and b on their full pixels.

    Each full pixel's 4 x 4 block of low pixels holds at least one of its own object
    (the edge is more than one low pixel from the border), so its value is a weighted
    mean of equal numbers: exact to float32 rounding (1e-6).
    """
    b = _two_objects(*full, edge)
    values = np.where(resize_nearest(b["instance"], low) == 1, -0.6, 0.7).astype(np.float32)[:, None]
    up = joint_bilateral_upsample(values, guide_channels(b), b["instance"])
    expected = np.where(b["instance"] == 1, -0.6, 0.7)[:, None]
    assert up.shape == expected.shape
    assert np.abs(up - expected).max() < 1e-6
    # Bilinear blurs the edge: next to it, pixels are off by a large part of the 1.3 step.
    assert np.abs(_bilinear(values, full) - expected).max() > 0.3


@pytest.mark.parametrize("factor", [2, 4])
def test_an_albedo_edge_stays_sharp_without_ids(factor):
    """Albedo 0.2 vs 0.9 (7 guide sigmas apart): cross-edge weights are below exp(-24.5) of the rest.

    The nearest same-side tap has spatial weight at least exp(-(2^2 + 2^2) / 2) = e^-4 and
    any cross-edge tap at most exp(-49 / 2); 16 taps bound the error by 16 e^-20.5 x 1.3,
    below 3e-8, so float32 rounding (1e-6) is the tolerance.
    """
    h, w = 8 * factor, 12 * factor
    edge = 5 * factor + 1
    albedo = np.where(np.arange(w)[None, None, :, None] < edge, 51, 230) * np.ones((1, h, 1, 3))
    b = {"albedo": albedo.astype(np.uint8)}
    low = (h // factor, w // factor)
    values = np.where(resize_nearest(b["albedo"][..., 0], low) == 51, 0.1, -0.5).astype(np.float32)[:, None]
    up = joint_bilateral_upsample(values, guide_channels(b, GuideScales(albedo=0.1)), None)
    expected = np.where(b["albedo"][..., 0] == 51, 0.1, -0.5)[:, None]
    assert np.abs(up - expected).max() < 1e-6


def test_a_constant_image_stays_constant_whatever_the_guides():
    """Weights are normalised: a constant comes back exactly, even with random guides and ids."""
    rng = np.random.default_rng(0)
    b = {
        "albedo": rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8),
        "depth": rng.uniform(0.5, 20, (2, 30, 40)).astype(np.float32),
        "instance": rng.integers(0, 5, (2, 30, 40)).astype(np.uint16),
    }
    up = joint_bilateral_upsample(np.full((2, 3, 10, 8), 0.25, np.float32), guide_channels(b), b["instance"])
    assert np.abs(up - 0.25).max() < 1e-6


def test_an_object_thinner_than_a_low_pixel_still_gets_a_value():
    """A one-pixel line no low pixel centre falls on: no tap shares its id, so the other guides decide."""
    b = _two_objects(32, 32, 40)  # all object 1
    b["instance"][:, :, 13] = 3
    b["albedo"][:, :, 13] = 250
    values = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 1, 8, 8).repeat(2, 0)
    up = joint_bilateral_upsample(values, guide_channels(b), b["instance"])
    assert np.isfinite(up).all() and up.min() >= -1 and up.max() <= 1


def test_detail_transfer_adds_only_the_upsampled_correction():
    """No correction gives the raster frame exactly; a uniform correction c gives raster + c everywhere."""
    rng = np.random.default_rng(1)
    b = _two_objects(24, 32, 11, frames=1)
    raster_full = rng.uniform(-0.8, 0.8, (1, 3, 24, 32)).astype(np.float32)
    raster_low = rng.uniform(-0.8, 0.8, (1, 3, 6, 8)).astype(np.float32)
    assert np.array_equal(detail_transfer(raster_low, raster_low, raster_full, b), raster_full)
    out = detail_transfer(raster_low + 0.15, raster_low, raster_full, b)
    assert np.abs(out - (raster_full + 0.15)).max() < 1e-6


def test_no_correction_where_the_raster_frame_is_already_exact():
    """Background pixels (instance 0) get none, unless smoke, fire or liquid lies in front of them."""
    rng = np.random.default_rng(2)
    b = dict(_two_objects(24, 32, 11, frames=1))
    b["instance"] = b["instance"].copy()
    b["instance"][:, :, :4] = 0  # a strip of background
    gas = np.zeros((1, 24, 32), np.float32)
    gas[:, :12, :4] = 0.5  # smoke in front of the strip's upper half
    gas[:, 12:, :4] = 1e-18  # the solver's traces far from a plume: clear
    heat = np.zeros((1, 24, 32), np.float32)
    heat[:, :12, :2] = 900.0  # a flame in front of part of the smoke
    b["gas_density"], b["gas_temperature"], b["liquid_mask"] = gas, heat, np.zeros((1, 24, 32), np.uint8)
    raster_full = rng.uniform(-0.8, 0.8, (1, 3, 24, 32)).astype(np.float32)
    raster_low = rng.uniform(-0.8, 0.8, (1, 3, 6, 8)).astype(np.float32)
    out = detail_transfer(raster_low + 0.15, raster_low, raster_full, b)
    assert np.array_equal(out[..., 12:, :4], raster_full[..., 12:, :4])  # clear background: the raster frame
    assert np.abs(out[..., :12, :4] - (raster_full[..., :12, :4] + 0.15)).max() < 1e-6  # smoke in front
    assert np.abs(out[..., 4:] - (raster_full[..., 4:] + 0.15)).max() < 1e-6  # surfaces
    b["gas_density"] = np.zeros_like(gas)  # the flame alone still counts
    out = detail_transfer(raster_low + 0.15, raster_low, raster_full, b)
    assert np.abs(out[..., :12, :2] - (raster_full[..., :12, :2] + 0.15)).max() < 1e-6
    assert np.array_equal(out[..., :12, 2:4], raster_full[..., :12, 2:4])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="taps"):
        joint_bilateral_upsample(np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 4, 4), np.float32), taps=3)
    with pytest.raises(ValueError, match="albedo, normal and depth"):
        guide_channels({"instance": np.zeros((1, 4, 4))})


def test_a_pixel_unlike_every_tap_falls_back_to_the_spatial_weights():
    """Guides 1e4 sigmas from every tap underflow every range weight to 0: that pixel takes the spatially
    weighted mean of its taps, which for a constant low image is the constant, finite."""
    b = {"albedo": np.zeros((1, 16, 16, 3), np.uint8)}
    b["albedo"][0, 5, 5] = 255  # one full pixel no low-pixel centre falls on
    guides = guide_channels(b, GuideScales(albedo=1e-4))
    up = joint_bilateral_upsample(np.full((1, 1, 4, 4), 0.3, np.float32), guides, None)
    assert np.isfinite(up).all() and np.abs(up - 0.3).max() < 1e-6


def test_pixel_filter_taps_are_the_blackman_harris_window_mass_over_each_pixel():
    """Cycles' window for filter_width w spans 2w px: for w = 1.5 the pixel beside the centre holds its
    mass over [0.5, 1.5] px, integrated here by quadrature from the window's definition."""
    from scipy.integrate import quad

    from hybrid.neural.pixel_filter import BLACKMAN_HARRIS, filter_taps, match_pixel_filter

    def window(x, extent):
        t = x / extent + 0.5
        return sum(a * np.cos(2 * np.pi * k * t) for k, a in enumerate(BLACKMAN_HARRIS))

    for width in (1.5, 2.0):
        extent = 2 * width
        total = quad(window, -extent / 2, extent / 2, args=(extent,))[0]
        taps = filter_taps(width)
        assert taps.sum() == pytest.approx(1.0, abs=1e-12) and np.allclose(taps, taps[::-1])
        r = len(taps) // 2
        for j in range(1, r + 1):
            hi = min(j + 0.5, extent / 2)
            assert taps[r + j] == pytest.approx(quad(window, j - 0.5, hi, args=(extent,))[0] / total, abs=1e-9)
    assert filter_taps(1.5)[0] == pytest.approx(0.1186, abs=1e-4)
    # Applied in linear light: a flat frame stays flat, a white-black step becomes the taps' partial sums.
    step = np.full((1, 3, 4, 8), -1.0, np.float32)
    step[..., 4:] = 1.0
    out = (match_pixel_filter(step, 1.5) + 1) / 2
    np.testing.assert_allclose(out[0, 0, 0, 3] ** 2.2, filter_taps(1.5)[0], rtol=1e-4)
    np.testing.assert_allclose(match_pixel_filter(np.full((1, 3, 4, 4), 0.2, np.float32), 1.5), 0.2, atol=1e-6)


def test_the_pixel_filter_reaches_only_pixels_beside_an_object_boundary():
    """A square of instance 2 on instance 1: the 1.5 px window (taps reach one pixel) changes the pixels on
    both sides of the outline and leaves the square's interior and the far floor exactly as they were."""
    from hybrid.neural.pixel_filter import geometric_edges, match_pixel_filter

    ids = np.ones((1, 12, 12), np.uint16)
    ids[:, 4:8, 4:8] = 2
    frame = np.where(ids[:, None] == 2, 0.8, -0.6).astype(np.float32).repeat(3, axis=1)
    frame[:, :, 5, 5] = 0.2  # texture detail inside the square: no id change, so it stays
    edges = geometric_edges(ids, 1.5)
    assert edges[0, 3, 5] and edges[0, 4, 5] and not edges[0, 5, 5] and not edges[0, 0, 0]
    out = match_pixel_filter(frame, 1.5, edges)
    np.testing.assert_array_equal(out[:, :, ~edges[0]], frame[:, :, ~edges[0]])
    assert out[0, 0, 4, 4] < frame[0, 0, 4, 4] and out[0, 0, 3, 5] > frame[0, 0, 3, 5]
