"""A new shape is one class and one registry call: scenes load, simulate and render it with no other edit.

The toy shape here is a square pyramid: base ``base`` metres wide, apex ``height``
metres above it, its origin at the centroid (h/4 above the base). It gives only its
mesh; its volume, inertia, pybullet collision shape and field collider come from the
defaults every shape gets from its mesh.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
import trimesh

from hybrid.scene import SceneError, load_scene_text
from hybrid.shapes import SHAPES, ShapeSpec, register_shape, unregister_shape
from hybrid.spec.types import Positive


class PyramidShape(ShapeSpec):
    """A square pyramid standing on its base; the origin is its centroid."""

    type: Literal["pyramid"]
    base: Positive
    height: Positive

    def mesh(self, seed: int = 0) -> trimesh.Trimesh:
        b, h = self.base / 2.0, self.height
        corners = [(-b, -b), (b, -b), (b, b), (-b, b)]
        vertices = np.array([(x, y, -h / 4.0) for x, y in corners] + [(0.0, 0.0, 0.75 * h)])
        faces = np.array([(0, 2, 1), (0, 3, 2), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4)])
        mesh = trimesh.Trimesh(vertices, faces, process=False)
        mesh.visual = trimesh.visual.TextureVisuals(uv=vertices[:, :2])
        return mesh


BASE, HEIGHT = 0.4, 0.3

SCENE = f"""
name: pyramid
frames: 36
fps: 24
resolution: [64, 48]
camera: {{position: [1.5, -1.5, 1.0], look_at: [0, 0, 0.1]}}
objects:
  - {{name: floor, shape: {{type: plane}}, physics: {{body: static}}}}
  - {{name: toy, shape: {{type: pyramid, base: {BASE}, height: {HEIGHT}}}, position: [0, 0, 0.3]}}
"""


@pytest.fixture
def pyramid():
    register_shape(PyramidShape)  # the one line a new shape needs
    try:
        yield PyramidShape
    finally:
        unregister_shape("pyramid")


def test_the_registered_shape_simulates_as_a_solid_and_comes_to_rest(pyramid):
    from hybrid.physics.mass import body_mass
    from hybrid.pipeline import simulate

    scene = load_scene_text(SCENE, "pyramid.yaml")
    toy = scene.objects[1]
    assert isinstance(toy.shape, PyramidShape)
    # Mass from the mesh's volume: density 1000 kg/m^3 x base^2 x height / 3.
    assert body_mass(toy) == pytest.approx(1000.0 * BASE**2 * HEIGHT / 3.0, rel=1e-9)
    states = simulate(scene)
    position = np.asarray(states[-1].position[1])
    # Fallen 0.3 - h/4 = 0.225 m (0.21 s) and resting on its base: centroid h/4 above the floor.
    assert position[2] == pytest.approx(HEIGHT / 4.0, abs=3e-3)
    assert np.abs(position[:2]).max() < 1e-3
    assert np.linalg.norm(states[-1].linear_velocity[1]) < 1e-2


def test_the_registered_shape_renders_where_the_camera_sees_it(pyramid):
    from hybrid.pipeline import render_clip

    scene = load_scene_text(SCENE, "pyramid.yaml", overrides={"frames": 2})
    clip = render_clip(scene)
    instance = clip.buffers["instance"]
    assert (instance == 2).sum(axis=(1, 2)).min() > 20  # the pyramid is instance 2 and in view
    assert clip.metadata["objects"][1]["name"] == "toy"


def test_the_registered_shape_is_checked_like_the_built_in_ones(pyramid):
    with pytest.raises(SceneError) as info:
        load_scene_text(SCENE.replace("base:", "bsae:"), "pyramid.yaml")
    assert "objects[1].shape.bsae: unknown key `bsae`" in str(info.value)
    assert "did you mean 'base'?" in str(info.value)
    with pytest.raises(SceneError) as info:
        load_scene_text(SCENE.replace(f"height: {HEIGHT}", "height: -1"), "pyramid.yaml")
    assert "objects[1].shape.height: expected a number greater than 0, got -1" in str(info.value)
    from hybrid.scene import scene_json_schema

    assert "PyramidShape" in scene_json_schema()["$defs"]


def test_the_fields_see_the_registered_shape_as_its_convex_hull(pyramid):
    from hybrid.fields.colliders import HULL, collider_shape

    scene = load_scene_text(SCENE, "pyramid.yaml")
    collider = collider_shape(scene.objects[1])
    assert collider.kind == HULL and len(collider.planes) == 5  # four sides and the base


def test_a_shape_is_registered_once_and_leaves_no_trace_when_removed(pyramid):
    with pytest.raises(ValueError, match="registered twice"):

        class Other(ShapeSpec):
            type: Literal["pyramid"]

        register_shape(Other)
    unregister_shape("pyramid")
    try:
        assert "pyramid" not in SHAPES
        with pytest.raises(SceneError, match="unknown shape type 'pyramid'"):
            load_scene_text(SCENE, "pyramid.yaml")
    finally:
        register_shape(PyramidShape)  # for the fixture's own removal
