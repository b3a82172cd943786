"""Smoke and fire in Cycles: Beer-Lambert through the grid, the blackbody glow, fire that lights, smoke that shadows.

Gas frames are written here by hand (uniform blocks of known density, flame and
temperature), so every expected value is a closed form: transmittance exp(-sigma L),
emitted radiance L x the glow per metre, irradiance from an emitting slab by
quadrature. The file sorts after the field solvers' tests for the reason given in
test_render_cycles_liquid.py (the rasteriser's gas march is a Taichi kernel).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hybrid.camera import camera_track
from hybrid.fields.frames import FieldFrame, GasFrame
from hybrid.render.cycles.options import CyclesOptions
from hybrid.scene.load import load_scene_text
from hybrid.state import State

from conftest import REPO

pytest.importorskip("bpy", reason="Blender as a Python module (pip install 'hybrid[cycles]') is not installed")

from hybrid.render.cycles.renderer import CyclesRenderer  # noqa: E402

SIGMA = 2.0  # look.extinction: 1/m at density 1
SIDE = 0.8  # the gas domain is the cube [-0.4, 0.4]^3
OPTS = CyclesOptions(samples=16, denoise=False, threads=1)


def _scene(n: int, extra: str = "", lights: str = "[{type: ambient, intensity: 0.0}]", albedo=(0, 0, 0)):
    text = f"""name: gas
frames: 1
resolution: [32, 32]
background: [1, 1, 1]
camera: {{position: [0, 0, 3], quaternion: [1, 0, 0, 0], fov_deg: 20}}
lights: {lights}
objects:
{extra or "  - {name: speck, shape: {type: sphere, radius: 0.01}, position: [5, 5, -5], physics: {body: static}}"}
fields:
  arch: cpu
  gas:
    domain: {{min: [-0.4, -0.4, -0.4], max: [0.4, 0.4, 0.4]}}
    resolution: {n}
    look: {{color: {list(albedo)}, extinction: {SIGMA}}}
"""
    return load_scene_text(text, str(REPO / "scenes" / "gas.yaml"))


def _state(scene, density, flame=None, temperature=None, origin=(-0.4, -0.4, -0.4), cell=None) -> State:
    n = len(scene.objects)
    zero = np.zeros(density.shape, np.float32)
    gas = GasFrame(
        origin=np.asarray(origin, dtype=np.float64), cell_size=cell or SIDE / density.shape[0],
        ambient_temperature=293.15, density=density.astype(np.float32),
        temperature=zero if temperature is None else temperature.astype(np.float32),
        fuel=zero, flame=zero if flame is None else flame.astype(np.float32),
        velocity=np.zeros((*density.shape, 3), np.float32), solid=zero.astype(np.uint8),
    )
    return State(
        frame=0, time_s=0.0, names=tuple(o.name for o in scene.objects),
        position=np.array([o.position for o in scene.objects], dtype=np.float64).reshape(n, 3),
        quaternion=np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)),
        linear_velocity=np.zeros((n, 3)), angular_velocity=np.zeros((n, 3)),
        fields=FieldFrame(gas=gas),
    )


def _raster_hdr(scene, state, cam):
    from hybrid.render.raster import Rasterizer

    with Rasterizer(scene) as raster:
        return raster.render(state, cam, hdr=True)["hdr"]


CENTRE = (slice(8, 24), slice(8, 24))  # 256 pixels whose rays cross the cube's top and bottom faces


def _secant(scene) -> np.ndarray:
    """(H, W) path length per metre of depth along each pixel's ray (1 / cos of its angle to the axis)."""
    from hybrid.camera import intrinsics

    K = intrinsics(scene.camera.fov_deg, scene.width, scene.height)
    v, u = np.mgrid[0: scene.height, 0: scene.width] + 0.5
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    return np.sqrt(1.0 + x * x + y * y)


@pytest.mark.parametrize("n", [8, 32])
def test_smoke_dims_the_background_by_beer_lambert_in_both_back_ends(n):
    """A black absorbing block seen against a white background: T = exp(-sigma L), whatever the cell size.

    Two blocks: the whole domain (smoke up to the grid's faces, L = 0.8 m) and its middle
    half in z (L = 0.4 m, ending inside the grid: at 32 cells on a boundary of OpenVDB's 8^3
    leaves, where Cycles once lost half a cell). Trilinear interpolation makes the block's
    edges ramps one cell wide whose integral equals the sharp block's, so both back ends
    owe exactly exp(-sigma L). The rasteriser marches deterministically, one midpoint
    sample per cell: exact (float32: 1e-3) through the whole domain, where the grid is
    clamped up to its faces; inside the grid a step straddling one of a ramp's two kinks
    (slope change sigma / h) errs by at most sigma h / 8 in optical depth, so the middle
    block's two ramps allow sigma h / 2 (0.1 at 8 cells, 0.025 at 32).
    Cycles marches with a random offset per path: over a ramp one step's sample errs by at
    most sigma h / 4 in optical depth, at most 0.05 at 8 cells, and 256 pixels x 16
    samples of independent offsets average that to well under 1 %; 2 % allows for it.
    """
    scene = _scene(n)
    cam = camera_track(scene).cam_to_world[0]
    whole = np.ones((n, n, n))
    half = np.zeros((n, n, n))
    half[:, :, n // 4: 3 * n // 4] = 1.0
    states = [_state(scene, whole), _state(scene, half)]
    with CyclesRenderer(scene, OPTS) as r:
        traced = [r.render_passes(s, cam)["hdr"] for s in states]
        clear = r.render_passes(dataclasses.replace(states[0], fields=None), cam)["hdr"]
    h = SIDE / n
    for state, hdr, length, march in zip(states, traced, (SIDE, SIDE / 2), (1e-3, SIGMA * h / 2)):
        want = np.exp(-SIGMA * length * _secant(scene))[CENTRE].mean()  # slanted rays cross up to 0.4 % more
        assert hdr[CENTRE][..., 0].mean() == pytest.approx(want, rel=0.02)
        assert _raster_hdr(scene, state, cam)[CENTRE][..., 0].mean() == pytest.approx(want, rel=march)
    assert np.all(clear == 1.0)  # the volume follows the state: no gas, no dimming


def _glow_per_metre(flame: float, kelvin: float) -> np.ndarray:
    """The rasteriser's flame emission written out: 5 x flame x (K / 1500)^4 x Wien chroma (unit luminance)."""
    c2 = 1.4388e-2
    wien = np.array([(1 / lam**5) * math.exp(-c2 / (lam * kelvin)) for lam in (610e-9, 550e-9, 465e-9)])
    chroma = wien / (0.2126 * wien[0] + 0.7152 * wien[1] + 0.0722 * wien[2])
    return 5.0 * flame * (kelvin / 1500.0) ** 4 * chroma


@pytest.mark.parametrize("n", [8, 16])
def test_a_clear_flame_glows_with_the_blackbody_radiance_per_metre(n):
    """Burning gas without smoke: radiance = path length x glow per metre, orange (R > G > B) at 1500 K.

    The flame fills the middle half of the grid in z, so each vertical ray crosses 0.4 m of
    it (the trilinear ramps integrate exactly, as for smoke). Same tolerances as above: the
    emission is integrated by the same marches, and the rasteriser's error over a kink of
    the glow's ramp is at most h / 8 of its value per metre, h / 2 for the two ramps,
    against 0.4 m: h / 0.8 relative.
    """
    scene = _scene(n)
    scene = scene.model_copy(update={"background": (0.0, 0.0, 0.0)})
    cam = camera_track(scene).cam_to_world[0]
    flame = np.zeros((n, n, n))
    flame[:, :, n // 4: 3 * n // 4] = 0.5
    kelvin = 1500.0
    state = _state(scene, np.zeros((n, n, n)), flame=flame, temperature=np.full((n, n, n), kelvin - 293.15))
    want = SIDE / 2 * _secant(scene)[CENTRE].mean() * _glow_per_metre(0.5, kelvin)
    assert want[0] > want[1] > want[2] > 0
    with CyclesRenderer(scene, OPTS) as r:
        traced = r.render_passes(state, cam)["hdr"]
    assert traced[CENTRE].mean(axis=0).mean(axis=0) == pytest.approx(want, rel=0.02)
    h = SIDE / n
    assert _raster_hdr(scene, state, cam)[CENTRE].mean(axis=0).mean(axis=0) == pytest.approx(want, rel=h / 0.8)


FLOOR = "  - {name: floor, shape: {type: plane, size: [20, 20]}, position: [0, 0, -0.4], physics: {body: static}, look: {color: [1, 1, 1], roughness: 1, ior: 1.0}}"


def _slab_irradiance(j: float, lo, hi, point, cells: int = 64) -> float:
    """Irradiance at `point` on an up-facing floor from an optically thin box [lo, hi] emitting radiance j per metre.

    A volume element dV emitting j per metre radiates intensity j dV (W/sr) in every
    direction, so E = int j cos(theta) / r^2 dV; midpoint quadrature on cells^3 boxes.
    """
    axes = [lo[a] + (np.arange(cells) + 0.5) * (hi[a] - lo[a]) / cells for a in range(3)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    dx, dy, dz = x - point[0], y - point[1], z - point[2]
    r2 = dx * dx + dy * dy + dz * dz
    dv = np.prod([(hi[a] - lo[a]) / cells for a in range(3)])
    return float(np.sum(j * (dz / np.sqrt(r2)) / r2) * dv)


def test_fire_lights_the_floor_and_smoke_shadows_it():
    """Cycles' own light transport: a flame slab lights the floor under it by E / pi, and smoke casts a shadow.

    Fire: a clear slab 0.2 m thick (z in [0, 0.2]) glows at j per metre over the whole
    domain's width; a white Lambertian floor 0.4 m below the domain's centre shows
    radiance E / pi with E by quadrature (``_slab_irradiance``), plus what the camera sees
    of the slab on the way down (0.2 m x j). Cycles finds the slab by sampling the floor's
    cosine lobe (volumes are not light-sampled): with the slab covering most of that lobe
    the per-path estimate varies by about its mean, and 256 pixels x 64 paths leave about
    1 % of noise; 4 % is four standard deviations.

    Smoke: a sun overhead (irradiance E_sun) and a black absorbing slab 0.2 m thick over the
    floor's middle: light crosses it down and the view crosses it up, T^2 = exp(-2 sigma 0.2)
    of the sunlit floor's E_sun / pi (the rasteriser composites the gas over surfaces
    without shadowing them by it, so only Cycles is held to this).
    """
    n = 16
    kelvin = 1500.0
    scene = _scene(n, extra=FLOOR)
    scene = scene.model_copy(update={"background": (0.0, 0.0, 0.0)})
    cam = camera_track(scene).cam_to_world[0]
    slab = np.zeros((n, n, n))
    slab[:, :, n // 2: n // 2 + n // 4] = 1.0  # z in [0, 0.2]
    fire = _state(scene, np.zeros((n, n, n)), flame=0.5 * slab, temperature=np.full((n, n, n), kelvin - 293.15))
    j = _glow_per_metre(0.5, kelvin)
    # Trilinear ramps at the slab's faces spread its emission half a cell each way (z in
    # [-h/2, 0.2 + h/2]), conserving its total; the quadrature takes the sharp slab, the
    # difference in cos/r^2 over a cell is second order in h / 0.4 (under 0.5 %).
    E = np.array([_slab_irradiance(c, (-0.4, -0.4, 0.0), (0.4, 0.4, 0.2), (0.0, 0.0, -0.4)) for c in j])
    want = E / math.pi + 0.2 * j  # the central pixels' rays are within 0.2 degrees of the axis
    with CyclesRenderer(scene, CyclesOptions(samples=64, denoise=False, threads=1)) as r:
        lit = r.render_passes(fire, cam)["hdr"]
    centre = (slice(12, 20), slice(12, 20))  # floor points within 2 cm of the axis: E varies < 1 % there
    assert lit[centre].mean(axis=0).mean(axis=0) == pytest.approx(want, rel=0.04)

    sun = "[{type: directional, direction: [0, 0, -1], intensity: 3.0, angular_diameter_deg: 0.0}]"
    scene = _scene(n, extra=FLOOR, lights=sun)
    scene = scene.model_copy(update={"background": (0.0, 0.0, 0.0)})
    smoke = _state(scene, slab)
    with CyclesRenderer(scene, OPTS) as r:
        shaded = r.render_passes(smoke, cam)["hdr"]
        sunlit = r.render_passes(dataclasses.replace(smoke, fields=None), cam)["hdr"]
    assert sunlit[centre].mean() == pytest.approx(3.0 / math.pi, rel=1e-3)
    assert shaded[centre].mean() == pytest.approx(3.0 / math.pi * math.exp(-2 * SIGMA * 0.2), rel=0.02)
