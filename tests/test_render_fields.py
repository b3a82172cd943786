"""Smoke, fire and liquid in the rendered frames and field buffers, against geometry and optics worked by hand.

Every scene looks straight down from CAM_HEIGHT m: OpenCV camera x = world x,
y = -world y, z = -world z, so pixel (r, c) looks along d = (x_n, -y_n, -1) in world
axes with x_n = (c + 0.5 - cx) / fx, y_n = (r + 0.5 - cy) / fy; a world point at
height zw has camera depth CAM_HEIGHT - zw, and a ray covers |d| metres per metre of
depth. Field frames are built by hand (no solver).

Tolerances: the gas march integrates a uniform grid exactly (midpoint rule over
equal steps ending exactly at the grid's faces and at the opaque depth; trilinear
samples clamped to the edge cells), so gas integrals are checked to float32
rounding (1e-5 relative, 2e-6 absolute). The liquid surface is an iso-surface of
particles splatted on a grid of spacing h (4 cm here): for a slab seeded as a solver
seeds it the iso-surface sits within a small fraction of a cell of the true faces
(0.3 mm measured), so thickness is checked to a quarter cell (h / 4) and the screen
motion, which scales as 1 / depth of the surface, to 0.5 % (0.15 % measured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hybrid.camera import intrinsics
from hybrid.fields import backend
from hybrid.fields.frames import FieldFrame, GasFrame, LiquidFrame
from hybrid.scene.spec import Scene
from hybrid.state import State

backend.ensure("cpu", True)

W, H = 64, 48
FOV = 50.0
CAM_HEIGHT = 2.0
DOWN = np.array([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, CAM_HEIGHT], [0, 0, 0, 1]])
K = intrinsics(FOV, W, H)
FIELD_KEYS = ("gas_density", "gas_temperature", "liquid_mask", "liquid_thickness", "fluid_velocity")

# The smoke box: 16 x 12 x 10 cells of 5 cm, x in [-0.4, 0.4], y in [-0.3, 0.3], z in [0.5, 1.0].
GAS_ORIGIN = np.array([-0.4, -0.3, 0.5])
GAS_CELL = 0.05
GAS_SHAPE = (16, 12, 10)


def _rays() -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) world ray directions with camera-z component 1 (depth-parameterised), and their lengths."""
    c, r = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    xn, yn = (c - K[0, 2]) / K[0, 0], (r - K[1, 2]) / K[1, 1]
    d = np.stack([xn, -yn, -np.ones_like(xn)], axis=-1)
    return d, np.linalg.norm(d, axis=-1)


def _depth_span(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Camera depths (t_in, t_out) where each pixel's ray enters and leaves the world box [lo, hi] (slab method)."""
    d, _ = _rays()
    o = np.array([0.0, 0.0, CAM_HEIGHT])
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (np.asarray(lo) - o) / d
        t1 = (np.asarray(hi) - o) / d
    t_in = np.nanmax(np.minimum(t0, t1), axis=-1)
    t_out = np.nanmin(np.maximum(t0, t1), axis=-1)
    return np.maximum(t_in, 0.0), t_out


def _scene(lights=(), objects=(), background=(0.5, 0.5, 0.5), gas_look=None, liquid_look=None, fps=24.0) -> Scene:
    fields = {"arch": "cpu"}
    if gas_look is not None:
        fields["gas"] = {"domain": {"min": [-1, -1, 0], "max": [1, 1, 2]}, "look": gas_look}
    if liquid_look is not None:
        fields["liquid"] = {
            "domain": {"min": [-1, -1, 0], "max": [1, 1, 1]},
            "fill": [{"min": [-0.1, -0.1, 0.0], "max": [0.1, 0.1, 0.1]}],
            "look": liquid_look,
        }
    return Scene.model_validate(
        dict(name="fields-render", frames=1, fps=fps, resolution=[W, H], camera=dict(fov_deg=FOV), background=list(background),
             lights=list(lights), objects=list(objects), fields=fields)
    )


def _state(scene: Scene, fields=None) -> State:
    n = len(scene.objects)
    return State(
        frame=0, time_s=0.0, names=tuple(o.name for o in scene.objects),
        position=np.array([o.position for o in scene.objects], dtype=float).reshape(n, 3),
        quaternion=np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)), linear_velocity=np.zeros((n, 3)),
        angular_velocity=np.zeros((n, 3)), fields=fields,
    )


def _gas(density=0.0, temperature=0.0, flame=0.0, velocity=(0.0, 0.0, 0.0)) -> GasFrame:
    full = lambda v: np.broadcast_to(np.asarray(v, np.float32), GAS_SHAPE).copy()  # noqa: E731
    return GasFrame(
        origin=GAS_ORIGIN, cell_size=GAS_CELL, ambient_temperature=293.15, density=full(density),
        temperature=full(temperature), fuel=full(0.0), flame=full(flame),
        velocity=np.broadcast_to(np.asarray(velocity, np.float32), GAS_SHAPE + (3,)).copy(),
        solid=np.zeros(GAS_SHAPE, np.uint8),
    )


LIQ_CELL = 0.04
SLAB_LO, SLAB_HI = np.array([-0.3, -0.2, 0.4]), np.array([0.3, 0.2, 0.6])


def _slab(velocity=(0.0, 0.0, 0.0)) -> LiquidFrame:
    """Particles filling the slab SLAB_LO..SLAB_HI, 2 per cell and axis (8 per cell), as a solver seeds them."""
    s = LIQ_CELL / 2
    axes = [np.arange(lo + s / 2, hi, s) for lo, hi in zip(SLAB_LO, SLAB_HI)]
    pos = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    return LiquidFrame(
        position=pos, velocity=np.tile(np.asarray(velocity, np.float32), (len(pos), 1)), particle_volume=s**3,
        cell_size=LIQ_CELL, origin=np.array([-1.0, -1.0, 0.0]), grid_shape=(50, 50, 25), material="water",
    )


def _render(scene: Scene, state: State, hdr: bool = True) -> dict:
    from hybrid.render import Rasterizer

    with Rasterizer(scene) as rast:
        return rast.render(state, DOWN, hdr=hdr)


def _floor(z=0.0):
    return dict(name="floor", shape=dict(type="box", size=[6, 6, 0.2]), position=[0, 0, z - 0.1],
                physics=dict(body="static"))


# ---------------------------------------------------------------- gas


def test_uniform_smoke_integral_and_transmittance_match_the_chord():
    scene = _scene(gas_look={"extinction": 2.0})
    rho = 0.8
    out = _render(scene, _state(scene, FieldFrame(gas=_gas(density=rho))))
    plain = _render(scene, _state(scene))
    lo, hi = GAS_ORIGIN, GAS_ORIGIN + GAS_CELL * np.array(GAS_SHAPE)
    t_in, t_out = _depth_span(lo, hi)
    chord = np.maximum(t_out - t_in, 0.0) * _rays()[1]
    assert (chord > 0).sum() > 200 and (chord == 0).any()  # the box covers part of the view
    assert set(FIELD_KEYS) <= set(out)
    np.testing.assert_allclose(out["gas_density"], rho * chord, rtol=1e-5, atol=2e-6)
    # No light: the smoke only absorbs, beauty x exp(-extinction x integral).
    expected = plain["hdr"] * np.exp(-2.0 * rho * chord)[..., None]
    np.testing.assert_allclose(out["hdr"], expected, rtol=1e-5, atol=1e-7)
    assert out["gas_temperature"].max() == 0.0
    assert out["liquid_mask"].max() == 0 and out["liquid_thickness"].max() == 0.0
    assert out["fluid_velocity"].shape == (H, W, 2) and np.all(out["fluid_velocity"] == 0.0)


def test_ambient_lit_smoke_adds_albedo_times_ambient_where_it_absorbs():
    """Uniform smoke under ambient light A alone over a black background: L = albedo A (1 - exp(-sigma chord))."""
    scene = _scene(lights=[dict(type="ambient", color=[1, 1, 1], intensity=0.8)], background=(0, 0, 0),
                   gas_look={"extinction": 3.0, "color": [0.6, 0.5, 0.4]})
    out = _render(scene, _state(scene, FieldFrame(gas=_gas(density=0.5))))
    t_in, t_out = _depth_span(GAS_ORIGIN, GAS_ORIGIN + GAS_CELL * np.array(GAS_SHAPE))
    chord = np.maximum(t_out - t_in, 0.0) * _rays()[1]
    albedo = np.array([0.6, 0.5, 0.4]) ** 2.2
    expected = albedo * 0.8 * (1.0 - np.exp(-3.0 * 0.5 * chord))[..., None]
    np.testing.assert_allclose(out["hdr"], expected, rtol=1e-4, atol=1e-6)


def test_opaque_bodies_cut_the_smoke_integral_at_their_depth():
    inside = dict(name="inside", shape=dict(type="box", size=[0.2, 0.2, 0.2]), position=[0.0, 0.0, 0.75],
                  physics=dict(body="static"))
    above = dict(name="above", shape=dict(type="box", size=[0.1, 0.1, 0.1]), position=[0.25, 0.0, 1.3],
                 physics=dict(body="static"))
    scene = _scene(lights=[dict(type="ambient"), dict(type="directional", direction=[0.3, 0.2, -1])],
                   objects=[inside, above], gas_look={})
    rho = 0.6
    out = _render(scene, _state(scene, FieldFrame(gas=_gas(density=rho))))
    _, length = _rays()
    top = out["instance"] == 1
    assert top.sum() > 20
    # The inner box's top face at z = 0.85, the smoke's top at z = 1.0.
    body_depth, smoke_depth = CAM_HEIGHT - 0.85, CAM_HEIGHT - 1.0
    np.testing.assert_allclose(out["depth"][top], body_depth, rtol=1e-6)
    expected = rho * (body_depth - smoke_depth) * length[top]
    np.testing.assert_allclose(out["gas_density"][top], expected, rtol=1e-5, atol=2e-6)
    # The box above the smoke hides it completely.
    assert (out["instance"] == 2).sum() > 4
    assert np.all(out["gas_density"][out["instance"] == 2] == 0.0)


def test_gas_temperature_is_the_maximum_along_the_ray_up_to_the_opaque_surface():
    # Temperature by height (cell layer k = 0 at the bottom): a 400 K plateau three cells thick under 250 K.
    profile = np.array([100, 100, 100, 400, 400, 400, 250, 250, 250, 250], np.float32)
    temperature = np.broadcast_to(profile, GAS_SHAPE)
    body = dict(name="b", shape=dict(type="box", size=[0.2, 0.2, 0.2]), position=[0.0, 0.0, 0.75],
                physics=dict(body="static"))  # top face at z = 0.85, above the plateau's cell centres (<= 0.825)
    scene = _scene(lights=[dict(type="ambient")], objects=[body], gas_look={})
    out = _render(scene, _state(scene, FieldFrame(gas=_gas(temperature=temperature))))
    t_in, t_out = _depth_span(GAS_ORIGIN, GAS_ORIGIN + GAS_CELL * np.array(GAS_SHAPE))
    # Rays through the grid's top and bottom faces away from its sides see the whole profile: max 400.
    d, _ = _rays()
    x_bottom, y_bottom = d[..., 0] * (CAM_HEIGHT - 0.5), d[..., 1] * (CAM_HEIGHT - 0.5)
    clear = (np.abs(x_bottom) < 0.35) & (np.abs(y_bottom) < 0.25) & (out["instance"] == 0)
    assert clear.sum() > 50
    np.testing.assert_allclose(out["gas_temperature"][clear], 400.0, rtol=1e-6)
    # Over the body only the layers above z = 0.85 count: 250.
    np.testing.assert_allclose(out["gas_temperature"][out["instance"] == 1], 250.0, rtol=1e-6)
    assert np.all(out["gas_temperature"][t_out <= t_in] == 0.0)
    assert np.all(out["gas_density"] == 0.0)


def test_fire_adds_warm_radiance():
    fire = np.zeros(GAS_SHAPE, np.float32)
    fire[6:10, 4:8, 3:7] = 2.0
    scene = _scene(background=(0.2, 0.2, 0.2), gas_look={"flame_intensity": 1.0})
    smoke = dict(density=0.05, temperature=np.where(fire > 0, 1200.0, 50.0).astype(np.float32))
    cold = _render(scene, _state(scene, FieldFrame(gas=_gas(**smoke))))
    hot = _render(scene, _state(scene, FieldFrame(gas=_gas(flame=fire, **smoke))))
    added = (hot["hdr"] - cold["hdr"]).astype(np.float64)
    centre = added[H // 2 - 2 : H // 2 + 2, W // 2 - 2 : W // 2 + 2].reshape(-1, 3)
    assert np.all(added >= -1e-6)
    assert np.all(centre[:, 0] > 0.05)  # clearly brighter
    assert np.all(centre[:, 0] > centre[:, 1]) and np.all(centre[:, 1] > centre[:, 2])  # warm: R > G > B
    # Flame does not change the buffers.
    np.testing.assert_array_equal(hot["gas_density"], cold["gas_density"])


def test_gas_velocity_is_the_density_weighted_mean_screen_motion():
    """Uniform smoke moving at v parallel to the image: mean of fx v dt / z over the chord, = fx v dt ln(z1/z0)/(z1-z0)."""
    v = (0.5, -0.25, 0.0)  # world; camera axes (0.5, 0.25, 0)
    scene = _scene(gas_look={}, fps=20.0)
    out = _render(scene, _state(scene, FieldFrame(gas=_gas(density=0.3, velocity=v))))
    t_in, t_out = _depth_span(GAS_ORIGIN, GAS_ORIGIN + GAS_CELL * np.array(GAS_SHAPE))
    hit = t_out > t_in + 1e-6
    mean_inv_z = np.log(t_out[hit] / t_in[hit]) / (t_out[hit] - t_in[hit])
    dt = 1.0 / 20.0
    np.testing.assert_allclose(out["fluid_velocity"][hit][:, 0], K[0, 0] * 0.5 * dt * mean_inv_z, rtol=2e-4)
    np.testing.assert_allclose(out["fluid_velocity"][hit][:, 1], K[1, 1] * 0.25 * dt * mean_inv_z, rtol=2e-4)
    assert np.all(out["fluid_velocity"][~hit] == 0.0)


# ---------------------------------------------------------------- liquid


def _slab_pixels(margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels whose ray crosses the slab's top and bottom faces at least `margin` inside (and ones >= margin outside)."""
    d, _ = _rays()
    inside = np.ones((H, W), bool)
    outside = np.zeros((H, W), bool)
    for depth in (CAM_HEIGHT - SLAB_HI[2], CAM_HEIGHT - SLAB_LO[2]):
        x, y = d[..., 0] * depth, d[..., 1] * depth
        inside &= (np.abs(x) < SLAB_HI[0] - margin) & (np.abs(y) < SLAB_HI[1] - margin)
        outside |= (np.abs(x) > SLAB_HI[0] + margin) | (np.abs(y) > SLAB_HI[1] + margin)
    far = np.ones((H, W), bool)
    for depth in (CAM_HEIGHT - SLAB_HI[2], CAM_HEIGHT - SLAB_LO[2]):
        x, y = d[..., 0] * depth, d[..., 1] * depth
        far &= (np.abs(x) > SLAB_HI[0] + margin) | (np.abs(y) > SLAB_HI[1] + margin)
    return inside, far


def test_liquid_slab_thickness_and_mask():
    scene = _scene(lights=[dict(type="ambient"), dict(type="directional")], objects=[_floor()], liquid_look={})
    out = _render(scene, _state(scene, FieldFrame(liquid=_slab())))
    inside, outside = _slab_pixels(margin=2 * LIQ_CELL)
    assert inside.sum() > 100 and outside.sum() > 100
    _, length = _rays()
    thickness = (SLAB_HI[2] - SLAB_LO[2]) * length  # the slab's chord along each ray
    np.testing.assert_allclose(out["liquid_thickness"][inside], thickness[inside], atol=LIQ_CELL / 4)
    assert np.all(out["liquid_mask"][inside] == 1)
    assert np.all(out["liquid_mask"][outside] == 0) and np.all(out["liquid_thickness"][outside] == 0)
    assert out["liquid_mask"].dtype == np.uint8
    # The liquid tints what lies under it (a blue-ish look) and the gas buffers stay zero.
    plain = _render(scene, _state(scene))
    assert not np.allclose(out["hdr"][inside], plain["hdr"][inside])
    assert np.all(out["gas_density"] == 0) and np.all(out["gas_temperature"] == 0)


def test_liquid_velocity_projects_with_the_camera():
    """Slab moving at v parallel to the image plane: du = fx v_x dt / z, dv = fy v_y dt / z at its top's depth z."""
    v_world = np.array([0.4, -0.3, 0.0])  # camera axes (0.4, 0.3, 0)
    scene = _scene(objects=[_floor()], liquid_look={}, fps=30.0)
    out = _render(scene, _state(scene, FieldFrame(liquid=_slab(velocity=v_world))))
    inside, outside = _slab_pixels(margin=2 * LIQ_CELL)
    z = CAM_HEIGHT - SLAB_HI[2]
    dt = 1.0 / 30.0
    flow = out["fluid_velocity"][inside]
    np.testing.assert_allclose(flow[:, 0], K[0, 0] * 0.4 * dt / z, rtol=0.005)
    np.testing.assert_allclose(flow[:, 1], K[1, 1] * 0.3 * dt / z, rtol=0.005)
    assert np.all(out["fluid_velocity"][outside] == 0.0)


# ---------------------------------------------------------------- the G-buffer and the plain path


def test_bodies_in_smoke_and_liquid_keep_their_gbuffer():
    body = dict(name="post", shape=dict(type="box", size=[0.2, 0.2, 0.8]), position=[0.1, 0.0, 0.4],
                physics=dict(body="static"))  # from the floor up through the slab (z 0.4..0.6) into the smoke
    scene = _scene(lights=[dict(type="ambient"), dict(type="directional")], objects=[_floor(), body],
                   gas_look={}, liquid_look={})
    fields = FieldFrame(gas=_gas(density=0.4, temperature=200.0), liquid=_slab(velocity=(0.1, 0, 0)))
    with_fields = _render(scene, _state(scene, fields))
    without = _render(scene, _state(scene))
    for name in ("depth", "instance", "normal", "albedo"):
        np.testing.assert_array_equal(with_fields[name], without[name])
    assert (with_fields["instance"] == 2).sum() > 20
    assert with_fields["gas_density"][with_fields["instance"] == 2].min() > 0
    # The post's top (z = 0.8) is above the liquid: no liquid in front of it. Around it, the slab is.
    assert np.all(with_fields["liquid_mask"][with_fields["instance"] == 2] == 0)
    assert with_fields["liquid_mask"].sum() > 100
    # A scene with fields whose state holds none still returns the five buffers, all zero.
    assert all(np.all(without[k] == 0) for k in FIELD_KEYS)


_PLAIN_RENDER = r"""
import json, os, sys
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
import numpy as np
from hybrid.render import Rasterizer
from hybrid.render.raster import BUFFER_NAMES
from hybrid.scene.spec import Scene
from hybrid.state import State
scene = Scene.model_validate(dict(name="plain", frames=1, resolution=[64, 48], objects=[
    dict(name="floor", shape=dict(type="plane", size=[10, 10]), physics=dict(body="static")),
    dict(name="ball", shape=dict(type="sphere", radius=0.4), position=[0.2, 0.1, 0.5])]))
state = State(frame=0, time_s=0.0, names=("floor", "ball"), position=np.array([[0, 0, 0], [0.2, 0.1, 0.5]], float),
              quaternion=np.tile([0, 0, 0, 1.0], (2, 1)), linear_velocity=np.zeros((2, 3)), angular_velocity=np.zeros((2, 3)))
cam = np.array([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, 3.0], [0, 0, 0, 1]])
with Rasterizer(scene) as rast:
    out = rast.render(state, cam)
    hdr = rast.render(state, cam, hdr=True)
    rgb = rast.render_rgb(state, cam)
    # The passes drawn directly, as the rasterizer did before fields existed.
    direct_rgb = rast._beauty.draw(rast.renderer)
    direct = rast._gbuffer.draw(rast.render_scene, np.linalg.inv(cam),
                                rast.render_scene.camera_node.camera.get_projection_matrix(width=64, height=48))
same = all(np.array_equal(out[k], direct[k]) for k in direct) and np.array_equal(out["rgb"], direct_rgb)
print(json.dumps({"keys": list(out), "hdr_keys": list(hdr), "same": bool(same), "rgb_same": bool(np.array_equal(rgb, direct_rgb)),
                  "names": list(BUFFER_NAMES), "taichi": "taichi" in sys.modules}))
"""


def test_scenes_without_fields_render_as_before_without_taichi():
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    res = subprocess.run([sys.executable, "-c", _PLAIN_RENDER], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["keys"] == report["names"] == ["rgb", "depth", "instance", "normal", "albedo"]
    assert report["hdr_keys"] == ["hdr", "depth", "instance", "normal", "albedo"]
    assert report["same"] and report["rgb_same"]
    assert not report["taichi"]


def test_render_hdr_and_rgb_composite_the_fields():
    from hybrid.render import Rasterizer
    from hybrid.render.beauty import encode_display

    scene = _scene(gas_look={"extinction": 2.0})
    state = _state(scene, FieldFrame(gas=_gas(density=0.8)))
    with Rasterizer(scene) as rast:
        full = rast.render(state, DOWN, hdr=True)
        np.testing.assert_array_equal(rast.render_hdr(state, DOWN), full["hdr"])
        np.testing.assert_array_equal(rast.render_rgb(state, DOWN), encode_display(full["hdr"]))
        np.testing.assert_array_equal(rast.render(state, DOWN)["rgb"], encode_display(full["hdr"]))
