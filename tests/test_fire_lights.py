"""Flames light the rasteriser's world: the emission summed into shadowed lights (hybrid.render.fields.fire_lights).

By hand: a cell of volume V emitting j per metre of path is a point source of
intensity j V; a group of cells, of the sum at the intensity-weighted centroid. On a
matte floor lit by such a light alone the radiance is proportional to its intensity,
and a pillar between the flame and a floor point shadows the point only while the
flame stands behind the pillar.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.fields import backend
from hybrid.fields.frames import FieldFrame, GasFrame
from hybrid.render.fields.fire_lights import LUMINANCE, fire_lights
from hybrid.render.fields.gas import flame_emission
from hybrid.scene.spec import Scene
from hybrid.state import State

backend.ensure("cpu", True)

W, H = 96, 72
CAM_HEIGHT = 2.0
# Looking straight down: OpenCV camera x = world x, y = -world y, z = -world z.
DOWN = np.array([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, CAM_HEIGHT], [0, 0, 0, 1]])
ORIGIN = np.array([-0.4, -0.4, 0.5])
CELL = 0.05
SHAPE = (16, 16, 10)


def _gas(flame: np.ndarray, temperature: float = 1200.0) -> GasFrame:
    zeros = np.zeros(SHAPE, np.float32)
    return GasFrame(
        origin=ORIGIN, cell_size=CELL, ambient_temperature=293.15, density=zeros, temperature=zeros + temperature,
        fuel=zeros, flame=flame.astype(np.float32), velocity=np.zeros(SHAPE + (3,), np.float32),
        solid=np.zeros(SHAPE, np.uint8),
    )


def _blob(centre_cells, half: int, value: float = 1.0) -> np.ndarray:
    flame = np.zeros(SHAPE, np.float32)
    i, j, k = centre_cells
    flame[i - half:i + half, j - half:j + half, k - half:k + half] = value
    return flame


# --------------------------------------------------------------- the summary


def test_one_cell_is_a_point_light_of_its_intensity():
    emission = np.zeros(SHAPE + (3,))
    emission[3, 4, 5] = (2.0, 1.0, 0.5)
    (light,) = fire_lights(emission, ORIGIN, CELL, 4)
    assert np.allclose(light.position, ORIGIN + CELL * (np.array([3, 4, 5]) + 0.5))
    power = np.array([2.0, 1.0, 0.5]) * CELL**3
    assert light.intensity == pytest.approx(power @ LUMINANCE, rel=1e-12)
    assert np.allclose(light.color * light.intensity, power)


def test_two_flames_two_lights_and_one_light_keeps_the_total():
    emission = np.zeros(SHAPE + (3,))
    emission[2:4, 2:4, 2:4] = (1.0, 0.5, 0.2)
    emission[12:14, 10:12, 2:4] = (3.0, 1.5, 0.6)
    two = fire_lights(emission, ORIGIN, CELL, 2)
    assert len(two) == 2
    brighter, dimmer = two
    assert np.allclose(brighter.position, ORIGIN + CELL * np.array([13.0, 11.0, 3.0]))
    assert np.allclose(dimmer.position, ORIGIN + CELL * np.array([3.0, 3.0, 3.0]))
    assert brighter.intensity == pytest.approx(3 * dimmer.intensity, rel=1e-12)
    (one,) = fire_lights(emission, ORIGIN, CELL, 1)
    total = emission.reshape(-1, 3).sum(axis=0) * CELL**3
    assert np.allclose(one.color * one.intensity, total)
    assert np.allclose(one.position, (brighter.position * 3 + dimmer.position) / 4)
    assert fire_lights(np.zeros(SHAPE + (3,)), ORIGIN, CELL, 2) == []


# --------------------------------------------------------------- in the rasteriser


def _scene(objects) -> Scene:
    floor = dict(name="floor", shape=dict(type="box", size=[6, 6, 0.2]), position=[0, 0, -0.1],
                 physics=dict(body="static"), look=dict(color=[0.8, 0.8, 0.8], roughness=1.0))
    gas = {"domain": {"min": list(ORIGIN), "max": list(ORIGIN + CELL * np.array(SHAPE))}, "combustion": {},
           "look": {"fire_lights": 1, "extinction": 1.0}}
    return Scene.model_validate(dict(
        name="fire-lights", frames=1, fps=24, resolution=[W, H], camera=dict(fov_deg=70), background=[0, 0, 0],
        lights=[{"type": "ambient", "intensity": 0.0}], objects=[floor, *objects], fields={"arch": "cpu", "gas": gas},
    ))


def _floor_radiance(scene: Scene, flame: np.ndarray, point) -> tuple[float, list]:
    from hybrid.camera import intrinsics
    from hybrid.render import Rasterizer
    from hybrid.render.scene_build import show_fire_lights

    n = len(scene.objects)
    gas = _gas(flame)
    state = State(
        frame=0, time_s=0.0, names=tuple(o.name for o in scene.objects),
        position=np.array([o.position for o in scene.objects], dtype=float), quaternion=np.tile([0.0, 0, 0, 1], (n, 1)),
        linear_velocity=np.zeros((n, 3)), angular_velocity=np.zeros((n, 3)), fields=FieldFrame(gas=gas),
    )
    with Rasterizer(scene) as rast:
        hdr = rast.render(state, DOWN, hdr=True)
        lights = show_fire_lights(rast.render_scene, scene, gas)
    K = intrinsics(70, W, H)
    x, y, z = point
    u = K[0, 0] * x / (CAM_HEIGHT - z) + K[0, 2]
    v = K[1, 1] * (-y) / (CAM_HEIGHT - z) + K[1, 2]
    rgb = hdr["hdr"]
    return float(np.asarray(rgb)[int(v), int(u)] @ LUMINANCE), lights


def test_floor_near_the_flames_gets_more_light_when_they_grow():
    """The same flame, then twice as hot per cell and then twice as wide: the floor's radiance rises
    with the light's intensity, in proportion (a Lambertian floor under one point light)."""
    scene = _scene([])
    point = (0.7, 0.0, 0.0)
    small, (l_small,) = _floor_radiance(scene, _blob((8, 8, 5), 1), point)
    strong, (l_strong,) = _floor_radiance(scene, _blob((8, 8, 5), 1, 2.0), point)
    wide, (l_wide,) = _floor_radiance(scene, _blob((8, 8, 5), 2), point)
    assert small > 0
    assert np.allclose(l_small.position, l_strong.position) and np.allclose(l_small.position, l_wide.position)
    assert l_wide.intensity == pytest.approx(8 * l_small.intensity, rel=1e-9)
    # The HDR target holds half floats: 2^-11 relative rounding.
    assert strong / small == pytest.approx(l_strong.intensity / l_small.intensity, rel=2e-3)
    assert wide / small == pytest.approx(8.0, rel=2e-3)


def test_a_pillar_shadows_the_floor_only_while_the_flame_stands_behind_it():
    """Light at (0, 0, 0.75), floor point P = (0.6, 0, 0): the segment between them crosses x = 0.3
    at z = 0.375, inside a 0.4 m pillar there, so P is dark. With the flame moved to y = 0.25 the
    segment crosses x = 0.3 at y = 0.125, clear of the pillar (0.06 m wide), and P is lit."""
    pillar = dict(name="pillar", shape=dict(type="box", size=[0.06, 0.06, 0.4]), position=[0.3, 0, 0.2],
                  physics=dict(body="static"))
    scene = _scene([pillar])
    point = (0.6, 0.0, 0.0)
    behind, (l_behind,) = _floor_radiance(scene, _blob((8, 8, 5), 1), point)
    beside, (l_beside,) = _floor_radiance(scene, _blob((8, 13, 5), 1), point)
    assert np.allclose(l_behind.position, [0.0, 0.0, 0.75]) and np.allclose(l_beside.position, [0.0, 0.25, 0.75])
    assert behind < 0.02 * beside
    assert beside > 0


def test_without_flames_the_fire_lights_add_nothing():
    """No flame anywhere: the frame is the one drawn with fire lights turned off (a dark light must not
    sit on a surface: intensity / distance^2 there is 0 / 0)."""
    from hybrid.render import Rasterizer

    def frame(count):
        scene = _scene([])
        gas = scene.fields.gas.model_copy(update={"look": scene.fields.gas.look.model_copy(update={"fire_lights": count})})
        scene = scene.model_copy(update={"fields": scene.fields.model_copy(update={"gas": gas})})
        state = State(
            frame=0, time_s=0.0, names=("floor",), position=np.array([[0, 0, -0.1]]), quaternion=np.array([[0, 0, 0, 1.0]]),
            linear_velocity=np.zeros((1, 3)), angular_velocity=np.zeros((1, 3)),
            fields=FieldFrame(gas=_gas(np.zeros(SHAPE, np.float32))),
        )
        with Rasterizer(scene) as rast:
            return rast.render(state, DOWN, hdr=True)["hdr"]

    assert np.array_equal(frame(1), frame(0))
