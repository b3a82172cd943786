"""Soft shadows from directional lights of non-zero angular size, against the penumbra worked out by hand.

A long bar at height h (seen from the side, so it does not hide its shadow) casts a shadow straight down (light travelling along -z).
For a light of angular diameter d, the edge of the shadow blends from dark to lit
over |x - x_edge| <= h tan(d / 2): the full penumbra is 2 h tan(d / 2) wide. A hard
light (d = 0) leaves only the shadow map's own filtering.
"""

import numpy as np
import pytest

from still_frames import render_still, surface_points

H = 1.0  # bar height above the floor, metres
EDGE = 0.5  # the bar spans x in [-0.5, 0.5]: its shadow's +x edge is at x = 0.5


def _render(diameter_deg: float) -> dict:
    light = {"type": "directional", "direction": [0, 0, -1], "intensity": 3.0, "shadows": True}
    if diameter_deg:
        light.update(angular_diameter_deg=diameter_deg, shadow_samples=16)
    return render_still(
        {
            "name": "penumbra",
            "frames": 1,
            "resolution": [200, 120],
            "physics": {"gravity": [0, 0, 0]},
            "camera": {"position": [0.5, -1.6, 1.6], "look_at": [0.5, 0.9, 0.0], "fov_deg": 30},
            "lights": [{"type": "ambient", "intensity": 0.2}, light],
            "objects": [
                {"name": "floor", "shape": {"type": "plane", "size": [3, 3]}, "physics": {"body": "static"},
                 "look": {"color": "white"}},
                {"name": "bar", "shape": {"type": "box", "size": [2 * EDGE, 2, 0.02]}, "position": [0, 1.3, H],
                 "physics": {"body": "static"}, "look": {"color": "gray"}},
            ],
        }
    )


def _profile(b: dict) -> tuple[np.ndarray, np.ndarray]:
    """(world x, linear brightness) of floor pixels in a band under the bar, y in [0.6, 1.2]."""
    _, _, world, lum = surface_points(b, 1)
    band = np.abs(world[1] - 0.9) < 0.3
    return world[0][band], lum[band]


def _width_10_90(x: np.ndarray, lum: np.ndarray) -> float:
    """Width of the dark-to-lit ramp right of the bar, between 10 % and 90 % of the step."""
    order = np.argsort(x)
    x, lum = x[order], lum[order]
    bins = np.arange(EDGE - 0.35, EDGE + 0.35, 0.005)
    idx = np.digitize(x, bins)
    centers, means = [], []
    for k in range(1, len(bins)):
        sel = idx == k
        if sel.sum() >= 2:
            centers.append((bins[k - 1] + bins[k]) / 2)
            means.append(lum[sel].mean())
    centers, means = np.array(centers), np.array(means)
    dark, lit = means[centers < EDGE - 0.2].mean(), means[centers > EDGE + 0.2].mean()
    frac = (means - dark) / (lit - dark)
    x10 = centers[np.argmax(frac > 0.1)]
    x90 = centers[np.argmax(frac > 0.9)]
    return float(x90 - x10)


@pytest.mark.parametrize("diameter_deg", [8.0, 16.0])
def test_penumbra_width_follows_the_lights_angular_size(diameter_deg):
    hard = _width_10_90(*_profile(_render(0.0)))
    soft = _width_10_90(*_profile(_render(diameter_deg)))
    full = 2 * H * np.tan(np.radians(diameter_deg) / 2)
    # For a uniform disc of directions the lit fraction across the penumbra is the area
    # of a circular segment, (acos(d) - d sqrt(1 - d^2)) / pi at offset d (in radii)
    # from the edge: it passes 10 % and 90 % at d = +-0.687, so 0.687 of the full width.
    expected = 0.687 * full
    assert hard < 0.35 * expected, (hard, expected)
    assert abs(soft - expected) <= 0.15 * expected + 0.01, (soft, expected, hard)


def test_soft_light_keeps_the_brightness_of_lit_ground():
    """Away from shadows an area light of small size lights the floor as the point-like one does:
    the tilted samples lose only cos(tilt) <= cos(8 deg) = 0.990 of the direct light."""
    x_h, lum_h = _profile(_render(0.0))
    x_s, lum_s = _profile(_render(16.0))
    lit_h = lum_h[x_h > EDGE + 0.25].mean()
    lit_s = lum_s[x_s > EDGE + 0.25].mean()
    assert 0.985 * lit_h <= lit_s <= 1.005 * lit_h
