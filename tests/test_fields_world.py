"""Fields inside a World: lockstep stepping, two-way coupling with pybullet, scene errors.

Expectations are worked out by hand: Archimedes' floating depth, a plume lifting a
light ball that falls without it, identical runs, and located errors for bad settings.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO

from hybrid.scene import SceneError, load_scene_text
from hybrid.world import World

TANK = """
name: float_test
fps: 24
frames: {frames}
physics: {{solver_iterations: 30}}
objects:
  - name: floor
    shape: {{type: plane}}
    physics: {{body: static}}
  - name: crate
    shape: {{type: box, size: [{s}, {s}, {s}]}}
    position: [0.0, 0.0, {z0}]
    physics: {{density: {rho}, angular_damping: 0.5}}
fields:
  coupling: {coupling}
  liquid:
    domain: {{min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, 0.6]}}
    resolution: 20
    particles_per_cell: 8
    sound_speed: 10
    fill:
      - {{min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, {h}]}}
"""


def _tank(frames=36, s=0.15, rho=500.0, h=0.24, z0=None, coupling="two_way"):
    z0 = h + 0.0 if z0 is None else z0
    return load_scene_text(TANK.format(frames=frames, s=s, rho=rho, h=h, z0=z0, coupling=coupling), "tank.yaml")


@pytest.mark.slow  # seconds of liquid until the crate settles
def test_crate_floats_at_archimedes_depth():
    """A 500 kg/m^3 cube in water floats with half its height below the surface.

    Equilibrium: rho_b s^3 g = rho_w s^2 d g, so d = s rho_b / rho_w = 0.075 m for
    s = 0.15. The surface stands at h plus the displaced volume spread over the tank:
    h' = h + s^2 d / A. Tolerance 0.02 m (two thirds of a 0.03 m cell): MPM's free
    surface and the grid boundary of the body are each resolved to about a cell.
    """
    s, rho, h = 0.15, 500.0, 0.24
    scene = _tank(frames=48, s=s, rho=rho, h=h, z0=h + s / 2 - 0.02)
    with World(scene) as world:
        states = world.run()
    d_expected = s * rho / 1000.0
    surface = h + s * s * d_expected / (0.6 * 0.6)
    # Average the last half second: the crate bobs a little around equilibrium.
    z_center = np.mean([st.position[1, 2] for st in states[-12:]])
    d_measured = surface - (z_center - s / 2)
    assert abs(d_measured - d_expected) < 0.02, (d_measured, d_expected)
    # Settled: the crate is not still accelerating away.
    assert abs(states[-1].linear_velocity[1, 2]) < 0.15


FLOATER = """
name: floater
fps: 24
frames: 48
physics: {{solver_iterations: 30}}
objects:
  - name: floor
    shape: {{type: plane}}
    physics: {{body: static}}
  - name: body
    shape: {shape}
    position: [0.0, 0.0, {z0}]
    physics: {{density: {rho}, angular_damping: 0.5}}
fields:
  liquid:
    domain: {{min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, 0.6]}}
    resolution: 24
    particles_per_cell: 8
    sound_speed: 10
    fill:
      - {{min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, 0.24]}}
"""


@pytest.mark.slow  # four liquids of two seconds each
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind, cells, rho", [("box", 4, 500.0), ("box", 8, 250.0), ("box", 8, 800.0), ("sphere", 8, 500.0)])
def test_bodies_float_at_archimedes_draft_at_every_size(kind, cells, rho):
    """Floating boxes and spheres of 4 and 8 cells (2.5 cm cells) and densities 250-800 settle
    where the water they displace weighs what they weigh: submerged volume = V rho / rho_w.

    The free surface is the liquid's own volume (``liquid_volume``: particle volumes times J,
    so the hydrostatic compression counts) plus the displaced volume, spread over the tank.
    Tolerance: a quarter cell of draft. The body is a band of grid nodes, so the liquid's
    boundary is located to a fraction of a cell; on the 1-DOF benchmark of ``mpm.py``
    (INSIDE_WEIGHT_REMOVED) drafts landed within 0.15 cells. That is 6 % of a 4-cell box's
    draft at density 500 and 10 % of an 8-cell box's at 250: the issue's 5 % holds only
    from about 8 cells across at density 500 up.
    """
    dx = 0.6 / 24
    s = cells * dx
    shape = f"{{type: box, size: [{s}, {s}, {s}]}}" if kind == "box" else f"{{type: sphere, radius: {s / 2}}}"
    volume = s**3 if kind == "box" else np.pi / 6 * s**3

    def submerged(h):  # volume below a draft h
        h = min(max(h, 0.0), s)
        return s * s * h if kind == "box" else np.pi * h * h * (1.5 * s - h) / 3

    want = volume * rho / 1000.0
    lo, hi = 0.0, s
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if submerged(mid) < want else (lo, mid)
    draft_expected = lo
    z0 = 0.24 + want / 0.36 - draft_expected + s / 2 + 0.2 * dx  # a little high
    scene = load_scene_text(FLOATER.format(shape=shape, rho=rho, z0=z0), "floater.yaml")
    with World(scene) as world:
        states = world.run()
    bottom = np.mean([st.position[1, 2] for st in states[-12:]]) - s / 2
    water = states[-1].fields.stats.liquid_volume
    surface = 0.24
    for _ in range(60):
        surface = (water + submerged(surface - bottom)) / 0.36
    draft = surface - bottom
    assert abs(draft - draft_expected) < 0.25 * dx, (draft / dx, draft_expected / dx)


def test_one_way_coupling_leaves_bodies_alone():
    """one_way: the liquid feels the crate, the crate feels no buoyancy and falls as in air."""
    # Released 3.5 cm above the water: after the three frames stepped it is 4 cm under.
    z0 = 0.35
    scene = _tank(frames=4, coupling="one_way", z0=z0)
    with World(scene) as world:
        states = world.run()
    # Free fall from rest as pybullet integrates it (semi-implicit Euler: after n steps of
    # dt the drop is g dt^2 n (n + 1) / 2), straight through the water.
    n = scene.steps_per_frame * (len(states) - 1)
    dt = scene.physics_dt
    assert states[-1].position[1, 2] == pytest.approx(z0 - 9.81 * dt * dt * n * (n + 1) / 2, abs=1e-6)


@pytest.mark.slow  # two runs; each solver's bit-identity is fast in test_fields_liquid
def test_fields_are_deterministic_run_to_run():
    scene = _tank(frames=4)
    runs = []
    for _ in range(2):
        with World(scene) as world:
            states = world.run()
        runs.append(states)
    for a, b in zip(*runs):
        assert np.array_equal(a.position, b.position)
        assert np.array_equal(a.fields.liquid.position, b.fields.liquid.position)
    assert runs[0][-1].fields.stats.liquid_substeps > 0


BOTH = """
name: threads_test
fps: 24
frames: 6
objects:
  - name: floor
    shape: {type: plane}
    physics: {body: static}
  - name: crate
    shape: {type: box, size: [0.12, 0.12, 0.12]}
    position: [0.02, 0.01, 0.2]
    rotation_deg: [0, 0, 20]
    physics: {density: 500, linear_velocity: [0.4, 0.0, -1.0]}
  - name: ball
    shape: {type: sphere, radius: 0.06}
    position: [0.71, 0.0, 0.3]
    physics: {mass: 0.01}
fields:
  liquid:
    domain: {min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, 0.45]}
    resolution: 16
    sound_speed: 10
    fill: [{min: [-0.3, -0.3, 0.0], max: [0.3, 0.3, 0.18]}]
  gas:
    domain: {min: [0.4, -0.3, 0.0], max: [1.0, 0.3, 0.9]}
    resolution: 16
    boundaries: {z_max: open}
    emitters: [{center: [0.7, 0.0, 0.1], radius: 0.08, density: 4, temperature: 300, fuel: 2, velocity: [0, 0, 1.5]}]
    combustion: {}
"""

THREADS_RUN = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    from hybrid.scene import load_scene_text
    from hybrid.world import World
    from hybrid.render.fields.liquid import splat_liquid
    h = hashlib.sha256()
    with World(load_scene_text(sys.stdin.read(), "threads.yaml")) as world:
        assert world.fields.backend.threads == int(sys.argv[1]), world.fields.backend
        for st in world.run():
            f = st.fields
            for a in (st.position, st.quaternion, st.linear_velocity, st.angular_velocity,
                      f.liquid.position, f.liquid.velocity, f.gas.density, f.gas.temperature, f.gas.velocity,
                      np.array([f.stats.liquid_volume]), splat_liquid(f.liquid)[0]):
                h.update(np.ascontiguousarray(a).tobytes())
    print(h.hexdigest())
    """
)


# Slow: each subprocess compiles every kernel again (Taichi fixes its thread count at start).
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_bodies_in_liquid_and_gas_give_the_same_bytes_on_one_and_two_threads():
    """Every sum in the solvers and the liquid splat has an order set by the data: a crate
    thrown into water and a ball in a flame's plume give the same bodies, particles, gas,
    liquid volume and splatted surface on one thread and on two, and again on two."""
    digests = []
    for threads in (1, 2, 2):
        env = {**os.environ, "HYBRID_FIELD_THREADS": str(threads)}
        r = subprocess.run(
            [sys.executable, "-c", THREADS_RUN, str(threads)], input=BOTH, cwd=REPO, env=env,
            capture_output=True, text=True, timeout=900,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        digests.append(r.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1] == digests[2], digests


PLUME = """
name: plume_test
fps: 24
frames: {frames}
objects:
  - name: ball
    shape: {{type: sphere, radius: 0.08}}
    position: [0.0, 0.0, 0.5]
    physics: {{mass: 0.004, gravity_scale: {gs}}}
fields:
  gas:
    domain: {{min: [-0.4, -0.4, 0.0], max: [0.4, 0.4, 1.2]}}
    resolution: 24
    boundaries: {{z_min: {{type: inflow, velocity: [0, 0, {w}]}}, z_max: open}}
    buoyancy: {{thermal: 0, smoke_weight: 0}}
    vorticity: 0
"""


@pytest.mark.slow
def test_upward_wind_carries_a_light_ball():
    """A 4 g ball at gravity_scale 0.1 (weight 0.0039 N) in a 3 m/s updraft.

    The stagnation pressure 0.5 rho v^2 = 5.4 Pa over the ball's 0.02 m^2 cross
    section pushes with about 0.1 N, far more than its weight: it must rise, while
    without wind it falls.
    """
    up = load_scene_text(PLUME.format(frames=12, gs=0.1, w=3.0), "plume.yaml")
    still = load_scene_text(PLUME.format(frames=12, gs=0.1, w=0.0), "plume.yaml")
    with World(up) as world:
        z_up = world.run()[-1].position[0, 2]
    with World(still) as world:
        z_still = world.run()[-1].position[0, 2]
    assert z_still < 0.5
    assert z_up > 0.5


@pytest.mark.parametrize(
    "patch, where, words",
    [
        ("material: water", "material: slime", ["unknown liquid material", "sand"]),
        ("resolution: 20", "resolution: 400", ["GiB", "resolution"]),
        ("sound_speed: 10", "sound_speed: 5000", ["CFL", "max_substeps"]),
        ("particles_per_cell: 8", "particles_per_cell: 0", ["particles_per_cell"]),
    ],
)
def test_bad_field_settings_are_located_errors(patch, where, words):
    text = TANK.format(frames=4, s=0.15, rho=500, h=0.24, z0=0.3, coupling="two_way")
    text = text.replace("    resolution: 20\n", "    resolution: 20\n    material: water\n")
    bad = text.replace(patch, where)
    assert bad != text
    with pytest.raises(SceneError) as err:
        load_scene_text(bad, "tank.yaml")
    message = str(err.value)
    assert message.startswith("tank.yaml:")
    for w in words:
        assert w in message, message


def test_gas_without_combustion_for_fuel_is_an_error():
    text = PLUME.format(frames=2, gs=1, w=0).replace(
        "    vorticity: 0\n", "    vorticity: 0\n    emitters: [{center: [0, 0, 0.2], fuel: 1}]\n"
    )
    with pytest.raises(SceneError) as err:
        load_scene_text(text, "plume.yaml")
    assert "combustion" in str(err.value)
