"""The rasteriser's texture mip chain: texels averaged in linear light (hybrid/render/mipmaps.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.render.mipmaps import linear_mip_chain, srgb_decode, srgb_encode

# One 8-bit step of the sRGB encoding is at most this much in linear light: half a step
# (rounding) times the decoding curve's steepest slope, 2.4 / 1.055 at full white.
HALF_STEP_LINEAR = 0.5 / 255 * 2.4 / 1.055


def _rgba(rgb: np.ndarray) -> np.ndarray:
    out = np.full(rgb.shape[:2] + (4,), 255, dtype=np.uint8)
    out[..., :3] = rgb
    return out


def test_the_curves_are_each_others_inverse_and_hit_the_standards_points():
    x = np.linspace(0.0, 1.0, 1001)
    assert np.allclose(srgb_decode(srgb_encode(x)), x, atol=1e-12)
    # IEC 61966-2-1: the linear segment ends at 0.04045 encoded = 0.0031308 linear; 1 maps to 1.
    assert srgb_decode(0.04045) == pytest.approx(0.04045 / 12.92)
    assert srgb_encode(1.0) == pytest.approx(1.0)


def test_black_and_white_average_to_half_the_light_not_half_the_code():
    """A 2 x 2 checker's next level is one texel reflecting half the light: encode(0.5) = 0.7354 -> 188, not 128."""
    rgb = np.array([[[0, 0, 0], [255, 255, 255]], [[255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
    levels = linear_mip_chain(_rgba(rgb))
    assert [lv.shape for lv in levels] == [(2, 2, 4), (1, 1, 4)]
    assert np.array_equal(levels[0][..., :3], rgb)
    assert levels[1][0, 0].tolist() == [188, 188, 188, 255]


@pytest.mark.parametrize("size", [(3, 5), (64, 64), (7, 12), (1, 9)])
def test_every_level_keeps_the_images_mean_light(size):
    """OpenGL's level sizes (max(1, n // 2) per axis down to 1 x 1), each level's mean of
    linear light equal to the image's within one level's rounding (HALF_STEP_LINEAR)."""
    rng = np.random.default_rng(size[0] * 100 + size[1])
    rgb = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    levels = linear_mip_chain(_rgba(rgb))
    h, w = size
    expected_sizes = [(h, w)]
    while expected_sizes[-1] != (1, 1):
        h, w = max(1, h // 2), max(1, w // 2)
        expected_sizes.append((h, w))
    assert [lv.shape[:2] for lv in levels] == expected_sizes
    mean = srgb_decode(rgb / 255.0).mean(axis=(0, 1))
    for level in levels[1:]:
        assert np.abs(srgb_decode(level[..., :3] / 255.0).mean(axis=(0, 1)) - mean).max() <= HALF_STEP_LINEAR
        assert np.all(level[..., 3] == 255)


def test_a_bad_image_is_refused_by_name():
    with pytest.raises(ValueError, match=r"\(H, W, 4\) uint8"):
        linear_mip_chain(np.zeros((4, 4, 3), dtype=np.uint8))
