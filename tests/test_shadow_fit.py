"""Directional shadow maps fitted to the casters (hybrid.render.shadow_fit), against geometry worked out by hand.

A box of side A and height HB stands on a 30 m floor; the sun travels along
d = (cos e, 0, -sin e) at elevation e. The box's shadow on the floor runs in +x from
its face at x = A / 2 to x = A / 2 + HB / tan(e), |y| <= A / 2. pyrender's own fit
spreads the 2048-texel map over twice the scene's diagonal (85 m: 4 cm texels), so the
shadow's far edge was a ramp several centimetres wide; fitted, the texels are far
below a pixel and the edge is as sharp as the pixels.
"""

import numpy as np
import pytest

from hybrid.render.shadow_fit import MARGIN_TEXELS, SIZE_STEP, fitted_shadow_camera
from still_frames import render_still, surface_points

A, HB = 0.2, 0.3  # box side and height, metres
ELEVATION = np.radians(25.0)
D = np.array([np.cos(ELEVATION), 0.0, -np.sin(ELEVATION)])
FAR_EDGE = A / 2 + HB / np.tan(ELEVATION)  # 0.743 m
TEXELS = 2048


def _floor_and_boxes(shift=0.0):
    floor = (np.array([-15.0, -15.0, 0.0]), np.array([15.0, 15.0, 0.0]))
    box = (np.array([-A / 2 + shift, -A / 2, 0.0]), np.array([A / 2 + shift, A / 2, HB]))
    ball = (np.array([0.5, 0.4, 0.0]), np.array([0.7, 0.6, 0.2]))
    return [floor, box, ball]


def _ndc(V, P, points):
    h = np.c_[points, np.ones(len(points))] @ (P @ V).T
    return h[:, :3] / h[:, 3:]


def test_fit_covers_every_caster_and_its_shadow_inside_the_margin():
    V, P = fitted_shadow_camera(_floor_and_boxes(), D, TEXELS)
    boxes = _floor_and_boxes()[1:]
    corners = np.array([[x, y, z] for lo, hi in boxes for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    landing = corners + D * (-corners[:, 2] / D[2])[:, None]
    ndc = _ndc(V, P, np.concatenate([corners, landing]))
    limit = 1.0 - 2.0 * MARGIN_TEXELS / TEXELS + 1e-9
    assert np.abs(ndc[:, :2]).max() <= limit
    # The floor's corners, far outside the square, still lie between the near and far planes.
    floor = np.array([[x, y, 0.0] for x in (-15, 15) for y in (-15, 15)])
    assert np.abs(_ndc(V, P, floor)[:, 2]).max() < 1.0
    side = 2.0 / P[0, 0]
    k = np.log(side) / np.log(SIZE_STEP)
    assert abs(k - round(k)) < 1e-9  # a power of 2^(1/4)
    spread = 2.0 * np.abs(ndc[:, :2]).max() / P[0, 0]  # metres spanned by the points on the worse axis
    assert side < SIZE_STEP * spread * TEXELS / (TEXELS - 2 * MARGIN_TEXELS) + 1e-9  # no bigger than one step needs


def test_texels_stay_put_on_the_world_while_casters_move():
    """A caster moving 7 mm changes the square by whole texels: a fixed floor point keeps its place in its texel."""
    first = fitted_shadow_camera(_floor_and_boxes(0.0), D, TEXELS)
    moved = fitted_shadow_camera(_floor_and_boxes(0.007), D, TEXELS)
    assert first[1][0, 0] == moved[1][0, 0]  # same side
    point = np.array([[0.31, -0.27, 0.0]])
    texel = [(_ndc(V, P, point)[0, :2] + 1.0) / 2.0 * TEXELS for V, P in (first, moved)]
    assert not np.allclose(texel[0], texel[1])  # the square did move...
    assert np.allclose((texel[0] - texel[1]) - np.round(texel[0] - texel[1]), 0.0, atol=1e-6)  # ...by whole texels


def test_no_fit_without_casters_or_for_a_light_from_the_horizon():
    floor = _floor_and_boxes()[:1]
    assert fitted_shadow_camera(floor, D, TEXELS) is None
    assert fitted_shadow_camera(_floor_and_boxes(), np.array([1.0, 0.0, -0.01]), TEXELS) is None
    assert fitted_shadow_camera(_floor_and_boxes(), np.array([0.0, 0.0, 1.0]), TEXELS) is None


def _floor_and_box(name: str, light: dict) -> dict:
    """The box on a 30 m white floor under ambient light and `light`, seen from above its shadow."""
    return render_still(
        {
            "name": name,
            "frames": 1,
            "resolution": [240, 160],
            "physics": {"gravity": [0, 0, 0]},
            "camera": {"position": [0.45, -1.2, 1.6], "look_at": [0.45, 0.0, 0.0], "fov_deg": 40},
            "lights": [{"type": "ambient", "intensity": 0.2}, light],
            "objects": [
                {"name": "floor", "shape": {"type": "plane", "size": [30, 30]}, "physics": {"body": "static"},
                 "look": {"color": "white", "roughness": 1.0}},
                {"name": "box", "shape": {"type": "box", "size": [A, A, HB]}, "position": [0, 0, HB / 2],
                 "physics": {"body": "static"}, "look": {"color": "gray"}},
            ],
        }
    )


def _render(shadows: bool) -> dict:
    return _floor_and_box("sun-on-a-big-floor",
                          {"type": "directional", "direction": D.tolist(), "intensity": 3.0, "shadows": shadows})


@pytest.fixture(scope="module")
def renders():
    return _render(True), _render(False)


def test_lit_floor_is_exactly_the_unshadowed_floor(renders):
    """No shadow acne: away from the box's shadow, the floor of a 30 m scene under a low sun
    (n . l = sin 25 deg = 0.42) is the floor rendered without shadows, to the byte."""
    shadowed, plain = renders
    v, u, (x, y, _), _ = surface_points(shadowed, 1)
    pixel = 0.006  # metres per pixel here, about: a band of 3 pixels around the shadow is left out
    outside = (np.abs(y) > A / 2 + 3 * pixel) | (x > FAR_EDGE + 3 * pixel) | (x < -A / 2 - 3 * pixel)
    diff = np.abs(shadowed["rgb"][0][v, u].astype(int) - plain["rgb"][0][v, u].astype(int))[outside]
    assert outside.sum() > 10_000
    assert diff.max() <= 1


def test_far_edge_of_the_shadow_is_where_geometry_puts_it_and_sharp(renders):
    _, _, (x, y, _), lum = surface_points(renders[0], 1)
    band = np.abs(y) < A / 4
    x, lum = x[band], lum[band]
    bins = np.arange(FAR_EDGE - 0.1, FAR_EDGE + 0.1, 0.004)
    idx = np.digitize(x, bins)
    centres = np.array([(bins[k - 1] + bins[k]) / 2 for k in range(1, len(bins)) if (idx == k).sum() >= 2])
    means = np.array([lum[idx == k].mean() for k in range(1, len(bins)) if (idx == k).sum() >= 2])
    dark, lit = means[centres < FAR_EDGE - 0.05].mean(), means[centres > FAR_EDGE + 0.05].mean()
    assert lit > 2 * dark  # ambient 0.2 against 0.2 + 3 x 0.42 / pi (Lambert) = 0.6
    frac = (means - dark) / (lit - dark)
    x10, x50, x90 = (centres[np.argmax(frac > f)] for f in (0.1, 0.5, 0.9))
    # A pixel here spans about 6 mm of floor; binning adds 4 mm. The whole-scene fit's
    # 4 cm texels, filtered over 3 x 3 texels, ramped over more than 8 cm.
    assert abs(x50 - FAR_EDGE) <= 0.012, (x50, FAR_EDGE)
    assert x90 - x10 <= 0.02, (x10, x90)


def _spot_render(shadows: bool) -> dict:
    return _floor_and_box("spot-on-a-big-floor",
                          {"type": "spot", "position": [1.6, 0.0, 1.0], "look_at": [0.4, 0.0, 0.0], "intensity": 6.0,
                           "inner_cone_deg": 40, "outer_cone_deg": 50, "shadows": shadows})


def test_spot_lit_floor_is_exactly_the_unshadowed_floor():
    """No shadow acne under a spot light either (its map is pyrender's perspective one; the bias is
    in texels at the point): a floor lit at angles down to n . l = 1 / sqrt(1 + 1.6^2) = 0.53 and
    below, away from the box's shadow, is the floor rendered without shadows, to the byte."""
    shadowed, plain = _spot_render(True), _spot_render(False)
    v, u, (x, y, _), _ = surface_points(shadowed, 1)
    # The box's shadow lies on the far side from the light (x < A / 2), inside the lines from
    # the light past the box's corners; 3 cm more is left out around it.
    behind = (x < A / 2 + 0.03) & (np.abs(y) < (A / 2) * (1.6 - x) / (1.6 - A / 2) * 1.6 + 0.03)
    diff = np.abs(shadowed["rgb"][0][v, u].astype(int) - plain["rgb"][0][v, u].astype(int))[~behind]
    assert (~behind).sum() > 10_000
    assert diff.max() <= 1
