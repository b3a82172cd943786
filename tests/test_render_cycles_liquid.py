"""The liquid in Cycles: the rasteriser's iso-surface as a closed mesh, water that shows what lies under it.

These run Taichi kernels (the liquid splat). They live apart from test_cycles.py, in a
file that sorts after the field solvers' tests, because in one process every Taichi
kernel compiled after the splat has run compiles about three times slower (measured:
tests/test_fields_gas.py takes 75 s instead of 26 s after it), and the gas solver
compiles its kernels per instance.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hybrid.camera import camera_track
from hybrid.pipeline import simulate
from hybrid.render.cycles.options import CyclesOptions
from hybrid.scene.load import load_scene_text

from conftest import REPO

pytest.importorskip("bpy", reason="Blender as a Python module (pip install 'hybrid[cycles]') is not installed")

from hybrid.render.cycles.renderer import CyclesRenderer  # noqa: E402



@pytest.mark.parametrize("radius_cells", [6, 12])
def test_the_liquid_surface_is_closed_faces_out_and_holds_the_particles_volume(radius_cells):
    """A ball of particles on a lattice (8 per cell): the mesh encloses their volume, triangles wound outward.

    The surface is phi = 1/2 of the particles' volume fraction smoothed by the quadratic
    B-spline (variance h^2 / 4 per axis). Smoothing a ball of radius R moves its half-level
    inward by about its mean curvature times the variance, h^2 / (4 R) at first order, which
    loses a share 3 h^2 / (4 R^2) of the volume: 2.1 % at R = 6 h, 0.5 % at R = 12 h. The
    test allows twice that plus the mesh's own chord error (linear interpolation between
    nodes: under 1/(2 (R/h)^2)), so the error must shrink about fourfold as R/h doubles.
    """
    from hybrid.fields import backend
    from hybrid.fields.frames import LiquidFrame
    from hybrid.render.cycles.fields import liquid_surface

    backend.ensure("cpu", True)  # the splat is a Taichi kernel

    h = 0.02
    radius = radius_cells * h
    step = h / 2
    axis = np.arange(-radius, radius + step, step) + step / 2
    lattice = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    inside = lattice[np.linalg.norm(lattice, axis=1) < radius] + 1.0
    n = radius_cells * 4
    frame = LiquidFrame(
        position=inside.astype(np.float32), velocity=np.zeros_like(inside, dtype=np.float32),
        particle_volume=step**3, cell_size=h, origin=np.full(3, 1.0 - n * h / 2), grid_shape=(n, n, n),
        material="water",
    )
    verts, faces = liquid_surface(frame)
    tri = verts[faces].astype(np.float64)
    # Divergence theorem: signed volume of the triangles, positive when they face out.
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    held = len(inside) * step**3
    bound = 2 * 3 / (4 * radius_cells**2) + 1 / (2 * radius_cells**2)
    assert volume > 0
    assert abs(volume / held - 1) < bound
    # Closed: every edge is shared by exactly two triangles.
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)


POOL = """
camera: {position: [0, 0, 1.2], quaternion: [1, 0, 0, 0], fov_deg: 40}
lights: [{type: ambient, intensity: 0.5}, {type: directional, direction: [0, 0, -1], intensity: 2}]
objects:
  - {name: floor, shape: {type: plane, size: [4, 4]}, physics: {body: static}, look: {color: [0.9, 0.9, 0.9]}}
  - {name: tile, shape: {type: box, size: [0.12, 0.12, 0.02]}, position: [0, 0, 0.01], physics: {body: static}, look: {color: [0.9, 0.1, 0.1]}}
fields:
  arch: cpu  # as every other test's fields: switching Taichi's backend would recompile their kernels
  liquid:
    domain: {min: [-0.2, -0.2, 0.0], max: [0.2, 0.2, 0.1]}
    resolution: 16
    fill: [{min: [-0.2, -0.2, 0.0], max: [0.2, 0.2, 0.06]}]
"""


def test_water_in_cycles_shows_what_lies_under_it():
    """A red tile under 6 cm of water: seen through the surface (still the reddest spot), and changed by it."""
    scene = load_scene_text(
        f"name: pool\nframes: 1\nresolution: [48, 48]\nbackground: [0, 0, 0]\n{POOL}", str(REPO / "scenes" / "p.yaml")
    )
    states = simulate(scene)
    cam = camera_track(scene).cam_to_world[0]
    assert states[0].fields is not None and states[0].fields.liquid.count > 0
    with CyclesRenderer(scene, CyclesOptions(samples=16, denoise=True, threads=1)) as r:
        wet = r.render_passes(states[0], cam)["hdr"]
        # The same frame without the water, in the same renderer: the surface follows the state.
        air = r.render_passes(dataclasses.replace(states[0], fields=None), cam)["hdr"]
    redness = lambda img: img[..., 0] / np.maximum(img[..., 1], 1e-6)  # noqa: E731
    tile, floor = (slice(21, 27), slice(21, 27)), (slice(2, 8), slice(2, 8))
    assert redness(wet)[tile].mean() > 1.5 * redness(wet)[floor].mean()
    assert redness(air)[tile].mean() > redness(wet)[tile].mean()  # the water's blue-green tint
    assert np.abs(wet - air)[tile].mean() > 0.05 * air[tile].mean()
