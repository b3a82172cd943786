"""A burning object's char in the rendered frames: exact in the albedo buffer, darker in the beauty frame.

The burn map's nodes carry a char level (hybrid.fields.burning); the rasteriser draws
the burn map's mesh with a per-vertex factor that makes the albedo
(1 - char) x colour + char x char_color (display values): a node fully charred shows
the char colour, an unburnt one the look's colour, each to the byte.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.fields import backend
from hybrid.fields.burn_surface import burn_surface
from hybrid.fields.frames import BurnFrame, FieldFrame
from hybrid.scene.spec import Scene
from hybrid.state import State

backend.ensure("cpu", True)

W, H = 96, 96
CAM_HEIGHT = 2.0
DOWN = np.array([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, CAM_HEIGHT], [0, 0, 0, 1]])
COLOR = (0.9, 0.6, 0.3)
CHAR = (0.1, 0.05, 0.02)


def _scene() -> Scene:
    board = dict(
        name="board", shape=dict(type="box", size=[0.8, 0.8, 0.05]), position=[0, 0, 0.025],
        physics=dict(body="static", flammable=dict(preset="dry_wood", char_color=list(CHAR), spacing=0.05, collapse=0)),
        look=dict(color=list(COLOR), roughness=1.0),
    )
    gas = {"domain": {"min": [-1, -1, 0], "max": [1, 1, 1]}, "combustion": {}, "look": {"fire_lights": 0}}
    return Scene.model_validate(dict(
        name="char", frames=1, fps=24, resolution=[W, H], camera=dict(fov_deg=40), background=[0, 0, 0],
        lights=[{"type": "ambient", "intensity": 1.0}], objects=[board], fields={"arch": "cpu", "gas": gas},
    ))


def _state(char: np.ndarray) -> State:
    """The board at rest, its burn map charred as `char` (one level per node)."""
    burn = BurnFrame(
        index=(0,), names=("board",), state=np.array([1], np.uint8), mass_kg=np.ones(1), burnt_kg=np.zeros(1),
        heat_J=np.zeros(1), burning_area_m2=np.zeros(1), ignition_time_s=np.zeros(1),
        consumed_time_s=np.full(1, np.nan), cause=("ignite",), char=(np.asarray(char, dtype=np.float32),),
    )
    return State(
        frame=0, time_s=0.0, names=("board",), position=np.array([[0, 0, 0.025]]), quaternion=np.array([[0, 0, 0, 1.0]]),
        linear_velocity=np.zeros((1, 3)), angular_velocity=np.zeros((1, 3)), fields=FieldFrame(burn=burn),
    )


def _render(scene: Scene, char: np.ndarray) -> dict:
    from hybrid.render import Rasterizer

    with Rasterizer(scene) as rast:
        return rast.render(_state(char), DOWN)


def test_char_is_exact_in_the_albedo_buffer_and_darkens_the_beauty():
    scene = _scene()
    surface = burn_surface(scene.objects[0].shape, 0, 0.05)
    x = surface.position[:, 0]
    char = np.where(x < -0.05, 1.0, np.where(x > 0.05, 0.0, 0.5))  # left third charred, right third clean
    out = _render(scene, char)
    albedo, instance = out["albedo"].astype(int), out["instance"]
    # Pixels over the left and right quarters of the board (world x = +-0.3), well inside each band.
    cols = {"charred": int(W / 2 - 0.3 * W / 2 / (CAM_HEIGHT - 0.05) / np.tan(np.radians(20))),
            "clean": int(W / 2 + 0.3 * W / 2 / (CAM_HEIGHT - 0.05) / np.tan(np.radians(20)))}
    rows = slice(H // 2 - 5, H // 2 + 5)
    for band, expect in (("charred", CHAR), ("clean", COLOR)):
        c = cols[band]
        assert np.all(instance[rows, c] == 1)
        want = np.floor(np.asarray(expect) * 255 + 0.5)
        assert np.abs(albedo[rows, c] - want).max() <= 1, band
    # Half-charred nodes in the middle: halfway between, in display values.
    mid = albedo[rows, W // 2]
    want = np.floor((0.5 * np.asarray(COLOR) + 0.5 * np.asarray(CHAR)) * 255 + 0.5)
    assert np.abs(mid - want).max() <= 1
    # The beauty frame is darker where it charred (same light, same normal).
    rgb = out["rgb"].astype(int).sum(axis=-1)
    assert rgb[rows, cols["charred"]].mean() < 0.3 * rgb[rows, cols["clean"]].mean()


def test_unburnt_object_draws_as_without_char():
    scene = _scene()
    surface = burn_surface(scene.objects[0].shape, 0, 0.05)
    out = _render(scene, np.zeros(surface.count))
    inside = out["instance"] == 1
    want = np.floor(np.asarray(COLOR) * 255 + 0.5)
    assert np.abs(out["albedo"][inside].astype(int) - want).max() <= 1


def test_cycles_draws_the_same_char():
    """Cycles under the uniform ambient world alone: the board's top (unoccluded, facing up) sends
    back albedo x ambient diffusely on every path plus the Principled BSDF's specular layer, which
    does not depend on the base colour (a dielectric's Fresnel term). So the difference between
    the clean band and the charred band is the look's linear colour times (1 - the char factor),
    as the rasteriser draws it (64 paths a pixel, 100 pixels: a few tenths of a per cent of noise;
    2% allowed)."""
    pytest.importorskip("bpy")
    from hybrid.render.cycles.options import CyclesOptions
    from hybrid.render.cycles.renderer import CyclesRenderer

    scene = _scene()
    surface = burn_surface(scene.objects[0].shape, 0, 0.05)
    x = surface.position[:, 0]
    char = np.where(x < -0.05, 1.0, np.where(x > 0.05, 0.0, 0.5))
    state = _state(char)
    with CyclesRenderer(scene, CyclesOptions(samples=64, denoise=False, threads=2)) as cycles:
        hdr = cycles.render_passes(state, DOWN)["hdr"]
    half = 0.3 * W / 2 / (CAM_HEIGHT - 0.05) / np.tan(np.radians(20))
    rows = slice(H // 2 - 5, H // 2 + 5)
    charred = hdr[rows, int(W / 2 - half)].reshape(-1, 3).mean(axis=0)
    clean = hdr[rows, int(W / 2 + half)].reshape(-1, 3).mean(axis=0)
    # Both back ends shade with the look's colour decoded as display_to_linear does and multiply
    # in the factor that makes the G-buffer's albedo exact (scene_build.char_multiplier).
    from hybrid.render.materials import display_to_linear
    from hybrid.render.scene_build import char_multiplier

    factor = char_multiplier(np.asarray(COLOR), np.asarray(CHAR), np.ones(1))[0]
    want = display_to_linear(COLOR) * (1.0 - factor)
    assert np.allclose(clean - charred, want, rtol=0.02, atol=2e-4), (clean - charred, want)
