"""The lathe shape: a swept outline, its exact convex partition, its mass and its collisions (hybrid/shapes/lathe.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from hybrid.scene.spec import Scene
from hybrid.shapes.lathe import LatheShape, convex_pieces
from hybrid.world import World

# A cup: out along the bottom, up the outside, over the rim, down the inside to a 12 mm floor.
CUP = [(0, 0), (0.07, 0), (0.08, 0.14), (0.07, 0.14), (0.06, 0.012), (0, 0.012)]


def _area(poly: np.ndarray) -> float:
    r, z = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(r * np.roll(z, -1) - np.roll(r, -1) * z))


@pytest.mark.parametrize("sections", [6, 24, 64])
def test_a_rectangle_swept_is_a_regular_prism_with_its_exact_volume_and_inertia(sections):
    """Outline (0, 0) (R, 0) (R, H) (0, H): an n-gon prism of circumradius R. Volume
    n/2 R^2 sin(2 pi / n) H; about the axis I / m = R^2 (1 + 2 cos^2(pi / n)) / 6 (a regular
    polygon's polar moment), which tends to a cylinder's R^2 / 2."""
    R, H = 0.05, 0.12
    shape = LatheShape(type="lathe", profile=[(0, 0), (R, 0), (R, H), (0, H)], sections=sections)
    n = sections
    assert shape.volume() == pytest.approx(n / 2 * R * R * math.sin(2 * math.pi / n) * H, rel=1e-12)
    com, per_kg = shape.inertia(shape.mesh())
    np.testing.assert_allclose(com, (0, 0, H / 2), atol=1e-12)
    assert per_kg[2, 2] == pytest.approx(R * R * (1 + 2 * math.cos(math.pi / n) ** 2) / 6, rel=1e-9)


@pytest.mark.parametrize("sections", [8, 24])
def test_the_convex_parts_are_convex_and_tile_the_drawn_solid(sections):
    shape = LatheShape(type="lathe", profile=CUP, sections=sections)
    parts = shape.convex_parts()
    pieces = convex_pieces(np.asarray(CUP, float))
    assert len(parts) == len(pieces) * sections
    volumes = [ConvexHull(p).volume for p in parts]
    assert sum(volumes) == pytest.approx(shape.volume(), rel=1e-12)  # no gap, no overlap in volume
    # Each part is exactly its hull (every corner a hull vertex: nothing concave was wrapped).
    for p in parts:
        assert len(ConvexHull(p).vertices) == len(p)
    # And no point is inside two parts (sampled): the tiling does not overlap.
    rng = np.random.default_rng(0)
    x = rng.uniform([-0.08, -0.08, 0.0], [0.08, 0.08, 0.14], size=(20000, 3))
    inside = np.zeros(len(x), int)
    for p in parts:
        eq = ConvexHull(p).equations
        inside += (x @ eq[:, :3].T + eq[:, 3] < -1e-12).all(axis=1)
    assert inside.max() == 1
    # The cup's hollow is empty: a point in the middle above its floor is in no part.
    hollow = (np.hypot(x[:, 0], x[:, 1]) < 0.05) & (x[:, 2] > 0.02)
    assert hollow.sum() > 500 and (inside[hollow] == 0).all()


def test_convex_pieces_of_an_outline_keep_its_area():
    wine = np.array([(0, 0), (0.035, 0), (0.035, 0.004), (0.006, 0.009), (0.0045, 0.07), (0.02, 0.08), (0.035, 0.11),
                     (0.038, 0.14), (0.036, 0.175), (0.032, 0.175), (0.034, 0.14), (0.031, 0.112), (0.017, 0.085), (0, 0.083)])
    pieces = convex_pieces(wine)
    assert sum(_area(wine[p]) for p in pieces) == pytest.approx(_area(wine), rel=1e-12)
    for p in pieces:
        assert _area(wine[p]) > 0
    assert len(pieces) <= 4 * (len(wine) - 2) // 2  # merged: far fewer than the triangles


def test_a_ball_dropped_into_a_cup_lands_on_its_floor_not_on_a_lid():
    """A moving cup collides as its convex parts: a 2 cm ball dropped into it comes to rest on the
    inner floor (z = 12 mm + r), which a hull would have covered 13 cm higher."""
    cup = dict(name="cup", shape=dict(type="lathe", profile=[list(p) for p in CUP], sections=24),
               physics=dict(density=800, friction=0.8))
    ball = dict(name="ball", shape=dict(type="sphere", radius=0.02), position=[0.0, 0.0, 0.3],
                physics=dict(density=1000, friction=0.8, angular_damping=0.5, linear_damping=0.2))
    floor = dict(name="floor", shape=dict(type="plane"), physics=dict(body="static", friction=0.8))
    scene = Scene.model_validate(dict(name="cup", frames=72, objects=[floor, cup, ball]))
    with World(scene) as world:
        states = world.run()
    end = states[-1]
    # The compound's parts are shrunk by pybullet's 1 mm margin and padded by it again: the floor
    # surface stays where it is drawn, to about a millimetre.
    assert end.position[2, 2] == pytest.approx(end.position[1, 2] + 0.012 + 0.02, abs=2e-3)
    assert np.hypot(*end.position[2, :2]) < 0.05


@pytest.mark.parametrize(
    "profile, words",
    [
        ([(0.01, 0), (0.05, 0), (0.05, 0.1), (0, 0.1)], "start and end on the axis"),
        ([(0, 0), (0, 0.1), (0.05, 0.1), (0.05, 0), (0, 0.0)], "only the profile's first and last"),
        ([(0, 0.1), (0.05, 0.1), (0.05, 0), (0, 0)], "clockwise"),
        ([(0, 0), (0.05, 0), (0.01, 0.1), (0.05, 0.1), (0, 0.0001)], "crosses itself"),
    ],
)
def test_bad_outlines_are_refused_with_the_fix(profile, words):
    with pytest.raises(ValueError, match=words):
        LatheShape(type="lathe", profile=profile)
