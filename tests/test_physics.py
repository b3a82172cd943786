"""Rigid-body physics against analytic answers; each test names the formula it checks.

Scenes are short and small so the whole file runs in seconds. Unless a test says
otherwise, pybullet steps at 1/240 s and damping is 0, so free flight follows
semi-implicit Euler exactly: v_n = v_0 - g n dt, z_n = z_0 + v_0 n dt - g dt^2 n (n + 1) / 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from hybrid import geometry
from hybrid.physics import BodyBuildError, SimulationError
from hybrid.physics.mass import mass_properties
from hybrid.scene.spec import DEFAULT_DENSITY, ObjectSpec, Scene
from hybrid.transforms import euler_deg_to_quat, pose_matrix, slerp
from hybrid.world import World

G = 9.81


def make_scene(objects: list[dict], **settings) -> Scene:
    settings.setdefault("frames", 12)
    return Scene.model_validate(dict(name="test", objects=objects, **settings))


def ball(name: str = "ball", radius: float = 0.1, position=(0.0, 0.0, 1.0), **physics) -> dict:
    return dict(name=name, shape=dict(type="sphere", radius=radius), position=list(position), physics=physics)


def floor(**physics) -> dict:
    return dict(name="floor", shape=dict(type="plane"), physics=dict(body="static", **physics))


def simulate(scene: Scene):
    with World(scene) as world:
        return world.run()


def discrete_fall(z0: float, g: float, dt: float, n: np.ndarray) -> np.ndarray:
    """Semi-implicit Euler from rest: z_n = z0 - g dt^2 n (n + 1) / 2."""
    return z0 - g * dt * dt * n * (n + 1) / 2.0


# ---------------------------------------------------------------- free flight


def test_free_fall_is_semi_implicit_euler_and_within_its_error_bound_of_the_parabola():
    """z_n = z0 - g dt^2 n(n+1)/2 exactly; |z_n - (z0 - g t^2/2)| = g t dt / 2 (the O(g t dt) error)."""
    scene = make_scene([ball(position=(0, 0, 10.0))], fps=24, frames=13)
    states = simulate(scene)
    dt, steps = scene.physics_dt, scene.steps_per_frame
    n = np.arange(len(states)) * steps
    z = np.array([s.position[0, 2] for s in states])
    np.testing.assert_allclose(z, discrete_fall(10.0, G, dt, n), rtol=0, atol=1e-9)
    t = np.array([s.time_s for s in states])
    np.testing.assert_allclose(t, np.arange(len(states)) / 24.0, rtol=0, atol=1e-12)
    parabola = 10.0 - G * t**2 / 2
    assert np.all(np.abs(z - parabola) <= G * t * dt / 2 + 1e-9)
    vz = np.array([s.linear_velocity[0, 2] for s in states])
    np.testing.assert_allclose(vz, -G * n * dt, rtol=0, atol=1e-9)  # v_n = -g n dt = -g t


def test_projectile_range_matches_v2_sin2theta_over_g():
    """R = v^2 sin(2 theta) / g at the launch height, found by interpolating between frames.

    Bound: semi-implicit Euler lands at t = 2 v_z / g - dt, i.e. v_x dt short, and linear
    interpolation of a parabola between frames errs by at most g T^2 / 8 in height,
    g T^2 / (8 tan theta) in x at the crossing (T = frame time).
    """
    v, theta = 5.0, math.radians(30.0)
    vx, vz = v * math.cos(theta), v * math.sin(theta)
    scene = make_scene([ball(position=(0, 0, 0), linear_velocity=(vx, 0.0, vz))], fps=60, frames=60)
    states = simulate(scene)
    x = np.array([s.position[0, 0] for s in states])
    z = np.array([s.position[0, 2] for s in states])
    k = int(np.flatnonzero((z[1:] < 0) & (z[:-1] >= 0))[0])
    crossing = x[k] + (x[k + 1] - x[k]) * z[k] / (z[k] - z[k + 1])
    expected = v * v * math.sin(2 * theta) / G
    frame_t = scene.frame_dt_sim
    bound = vx * scene.physics_dt + G * frame_t**2 / (8 * math.tan(theta)) + 1e-9
    assert abs(crossing - expected) <= bound, (crossing, expected, bound)


def test_time_scale_spaces_frames_by_time_scale_over_fps():
    """Frame k is at t = k * time_scale / fps; free fall then obeys z = z0 - g dt^2 n(n+1)/2 per step."""
    scene = make_scene([ball(position=(0, 0, 5.0))], fps=24, frames=9, time_scale=0.25)
    states = simulate(scene)
    assert scene.frame_dt_sim == pytest.approx(0.25 / 24)
    for k, s in enumerate(states):
        assert s.time_s == pytest.approx(k * 0.25 / 24, abs=1e-12)
    n = np.arange(len(states)) * scene.steps_per_frame
    assert scene.steps_per_frame * scene.physics_dt == pytest.approx(0.25 / 24)
    z = np.array([s.position[0, 2] for s in states])
    np.testing.assert_allclose(z, discrete_fall(5.0, G, scene.physics_dt, n), rtol=0, atol=1e-9)


@pytest.mark.parametrize("scale", [0.0, 0.5, -1.0])
def test_gravity_scale_multiplies_the_acceleration(scale):
    """z_n = z0 - (s g) dt^2 n(n+1)/2 for gravity_scale s (0 floats, -1 falls up); neighbours keep g."""
    scene = make_scene([ball("scaled", position=(0, 0, 5.0), gravity_scale=scale), ball("plain", position=(1, 0, 5.0))])
    states = simulate(scene)
    n = np.arange(len(states)) * scene.steps_per_frame
    z = np.array([s.position[:, 2] for s in states])
    np.testing.assert_allclose(z[:, 0], discrete_fall(5.0, scale * G, scene.physics_dt, n), rtol=0, atol=1e-9)
    np.testing.assert_allclose(z[:, 1], discrete_fall(5.0, G, scene.physics_dt, n), rtol=0, atol=1e-9)
    assert np.all(np.abs(np.array([s.position[0, :2] for s in states])) < 1e-12)  # no torque from the force


# ---------------------------------------------------------------- collisions


def test_bounce_apex_ratio_is_restitution_squared():
    """h1 / h0 = e^2 with e = e_ball * e_floor (pybullet multiplies); floor e = 1 so e = e_ball.

    Tolerance: the impact is solved at the first step in which the ball overlaps the floor,
    by up to v dt, and the push back out happens within a step too, so the heights fallen
    and climbed are each off by at most v dt: |h1/h0 - e^2| <= 2 e^2 v dt / h0; the apex is
    read from frames, off by at most g T^2 / 8. The step is small (1/2400 s).
    """
    e, h0, r = 0.8, 0.5, 0.05
    scene = make_scene(
        [floor(restitution=1.0), ball(radius=r, position=(0, 0, r + h0), restitution=e)],
        fps=600,
        frames=600,
        physics=dict(timestep=1 / 2400),
    )
    states = simulate(scene)
    z = np.array([s.position[1, 2] for s in states]) - r
    vz = np.array([s.linear_velocity[1, 2] for s in states])
    bounce = int(np.flatnonzero((vz[:-1] < 0) & (vz[1:] > 0))[0])
    h1 = z[bounce:].max()
    v_impact = math.sqrt(2 * G * h0)
    tolerance = 2 * e * e * v_impact * scene.physics_dt / h0 + G * scene.frame_dt_sim**2 / 8 / h0
    assert abs(h1 / h0 - e * e) <= tolerance, (h1 / h0, e * e, tolerance)


@pytest.mark.parametrize("m2", [1.0, 3.0])
def test_head_on_collision_conserves_momentum_and_follows_the_elastic_formula(m2):
    """m1 v1 + m2 v2 conserved; e = 1: v1' = (m1 - m2) v1 / (m1 + m2), v2' = 2 m1 v1 / (m1 + m2).

    With equal masses the spheres exchange velocities (v1' = 0, v2' = v1).
    """
    m1, v1 = 1.0, 2.0
    # The gap is not a whole number of steps of travel: a contact that happens to be
    # solved at exactly zero distance would lose (round-off distance) / dt of speed.
    scene = make_scene(
        [
            ball("a", position=(-0.5037, 0, 0), mass=m1, restitution=1.0, friction=0.0, linear_velocity=(v1, 0, 0)),
            ball("b", position=(0.0, 0, 0), mass=m2, restitution=1.0, friction=0.0),
        ],
        physics=dict(gravity=(0.0, 0.0, 0.0)),
        fps=24,
        frames=12,
    )
    states = simulate(scene)
    for s in states:
        momentum = m1 * s.linear_velocity[0] + m2 * s.linear_velocity[1]
        np.testing.assert_allclose(momentum, [m1 * v1, 0, 0], rtol=0, atol=1e-9)
    end = states[-1].linear_velocity
    assert end[0, 0] == pytest.approx((m1 - m2) * v1 / (m1 + m2), abs=1e-9)
    assert end[1, 0] == pytest.approx(2 * m1 * v1 / (m1 + m2), abs=1e-9)


def incline_scene(theta_deg: float, mu_box: float, mu_incline: float, frames: int) -> Scene:
    """A cube resting on a static slab tilted by theta about y (the surface falls along +x)."""
    th = math.radians(theta_deg)
    normal = np.array([math.sin(th), 0.0, math.cos(th)])
    down = np.array([math.cos(th), 0.0, -math.sin(th)])
    cube_center = normal * (0.1 + 0.1) - down * 1.0
    return make_scene(
        [
            dict(
                name="incline",
                shape=dict(type="box", size=[4.0, 1.0, 0.2]),
                rotation_deg=[0, theta_deg, 0],
                physics=dict(body="static", friction=mu_incline),
            ),
            dict(
                name="cube",
                shape=dict(type="box", size=[0.2, 0.2, 0.2]),
                position=cube_center.tolist(),
                rotation_deg=[0, theta_deg, 0],
                physics=dict(friction=mu_box),
            ),
        ],
        fps=24,
        frames=frames,
    )


def test_box_slides_down_an_incline_with_a_equal_g_sin_minus_mu_cos():
    """a = g (sin t - mu cos t), mu = mu_box * mu_incline; speed along the slope v = a t."""
    theta, mu = 30.0, 0.3 * 1.0
    scene = incline_scene(theta, mu_box=0.3, mu_incline=1.0, frames=13)
    states = simulate(scene)
    th = math.radians(theta)
    down = np.array([math.cos(th), 0.0, -math.sin(th)])
    a = G * (math.sin(th) - mu * math.cos(th))
    end = states[-1]
    speed = float(end.linear_velocity[1] @ down)
    # Within 2 %: Bullet solves friction per contact point by iteration (50 passes), not in closed form.
    assert speed == pytest.approx(a * end.time_s, rel=0.02)
    travelled = float((end.position[1] - states[0].position[1]) @ down)
    n = round(end.time_s / scene.physics_dt)
    assert travelled == pytest.approx(a * scene.physics_dt**2 * n * (n + 1) / 2, rel=0.02)  # semi-implicit Euler


def test_box_stays_put_on_an_incline_when_mu_exceeds_tan_theta():
    """No sliding when mu = mu_box * mu_incline > tan(theta) (0.8 > tan 30 deg = 0.577)."""
    scene = incline_scene(30.0, mu_box=0.8, mu_incline=1.0, frames=25)
    states = simulate(scene)
    moved = np.linalg.norm(states[-1].position[1] - states[0].position[1])
    assert moved < 1e-3


def test_contact_impulse_equals_momentum_change_of_a_ball_hitting_the_floor():
    """Impulse-momentum theorem over one frame: J_n = m (v_after - v_before) + m g T (gravity acts too)."""
    m = 2.0
    scene = make_scene([floor(), ball(mass=m, position=(0.3, -0.2, 0.6), restitution=0.0)], fps=24, frames=24)
    states = simulate(scene)
    hits = [k for k, s in enumerate(states) if s.contacts]
    assert hits, "the ball never touched the floor"
    first = hits[0]
    T = scene.frame_dt_sim
    v_impact = math.sqrt(2 * G * 0.5)  # dropped from 0.5 m above the floor
    for k in (first, first + 1, hits[-1]):  # the impact frame, the next, and resting contact
        (contact,) = states[k].contacts
        assert (contact.a, contact.b) == ("floor", "ball")  # scene order
        expected = m * (states[k].linear_velocity[1, 2] - states[k - 1].linear_velocity[1, 2]) + m * G * T
        assert contact.impulse_Ns == pytest.approx(expected, rel=1e-6, abs=1e-9)
        np.testing.assert_allclose(contact.normal, (0, 0, -1), atol=1e-9)  # from b (ball) to a (floor)
        np.testing.assert_allclose(contact.position[:2], (0.3, -0.2), atol=1e-9)
        # Contacts are solved once the surfaces overlap, by at most one step of travel v dt;
        # the reported point lies midway, so at most v dt / 2 below the floor.
        assert -v_impact * scene.physics_dt / 2 <= contact.position[2] <= 1e-9
    assert states[hits[-1]].contacts[0].impulse_Ns == pytest.approx(m * G * T, rel=1e-3)  # resting: J = m g T


@pytest.mark.parametrize("substeps", [1, 3])
def test_resting_contact_impulse_is_weight_times_frame_time(substeps):
    """A ball at rest on the floor: J = m g T per frame, also when pybullet splits steps into substeps."""
    m = 1.5
    scene = make_scene([floor(), ball(mass=m, position=(0, 0, 0.1))], frames=6, physics=dict(substeps=substeps))
    states = simulate(scene)
    for s in states[2:]:
        (contact,) = s.contacts
        assert contact.impulse_Ns == pytest.approx(m * G * scene.frame_dt_sim, rel=1e-6)


def test_contacts_are_sorted_in_scene_order_and_name_each_pair_once():
    """Several balls resting on a floor: one contact per (floor, ball) pair, sorted by scene index."""
    objects = [ball(f"b{i}", position=(0.3 * i, 0, 0.1)) for i in range(3)] + [floor()]
    states = simulate(make_scene(objects, frames=6))
    pairs = [(c.a, c.b) for c in states[-1].contacts]
    assert pairs == [("b0", "floor"), ("b1", "floor"), ("b2", "floor")]
    for c in states[-1].contacts:
        np.testing.assert_allclose(c.normal, (0, 0, 1), atol=1e-9)  # from the floor (b) up to the ball (a)


# ---------------------------------------------------------------- kinematic bodies


def test_kinematic_body_follows_its_keyframes_exactly():
    """p(t) = p_k + u (p_k+1 - p_k), q(t) = slerp(q_k, q_k+1, u), u = (t - t_k)/(t_k+1 - t_k); held outside."""
    keys = [
        dict(t=0.25, position=[0, 0, 1]),
        dict(t=0.75, position=[1, 0, 1], rotation_deg=[0, 0, 90]),
        dict(t=1.0, position=[1, 2, 1.5]),
    ]
    paddle = dict(
        name="paddle",
        shape=dict(type="box", size=[0.2, 0.2, 0.05]),
        position=[9, 9, 9],
        physics=dict(body="kinematic", keyframes=keys),
    )
    scene = make_scene([paddle], fps=24, frames=30)
    states = simulate(scene)
    q_id, q_90 = (0.0, 0.0, 0.0, 1.0), euler_deg_to_quat((0, 0, 90))
    for s in states:
        t = s.time_s
        if t <= 0.25:
            pos, quat = np.array([0, 0, 1.0]), q_id
        elif t <= 0.75:
            u = (t - 0.25) / 0.5
            pos, quat = np.array([u, 0, 1.0]), slerp(q_id, q_90, u)
        elif t <= 1.0:
            u = (t - 0.75) / 0.25
            # The last keyframe has no rotation: it keeps the object's own (identity).
            pos, quat = np.array([1, 2 * u, 1 + 0.5 * u]), slerp(q_90, q_id, u)
        else:
            pos, quat = np.array([1, 2, 1.5]), q_id
        np.testing.assert_allclose(s.position[0], pos, atol=1e-12)
        assert abs(abs(float(np.dot(s.quaternion[0], quat))) - 1) < 1e-12
    # The velocity over the next step of a linear segment is its slope: (1 m) / (0.5 s) along x.
    mid = next(s for s in states if 0.3 < s.time_s < 0.7)
    np.testing.assert_allclose(mid.linear_velocity[0], (2.0, 0, 0), atol=1e-9)


def test_kinematic_body_hits_with_its_velocity():
    """A wall of infinite mass moving at V meets a ball at rest: v_ball' = (1 + e) V (e = e_wall e_ball = 1)."""
    V = 1.0
    wall = dict(
        name="wall",
        shape=dict(type="box", size=[0.1, 1.0, 1.0]),
        position=[-0.3, 0, 0],
        physics=dict(body="kinematic", linear_velocity=(V, 0, 0), restitution=1.0),
    )
    scene = make_scene(
        [wall, ball(position=(0, 0, 0), restitution=1.0, friction=0.0)],
        physics=dict(gravity=(0.0, 0.0, 0.0)),
        fps=24,
        frames=12,
    )
    states = simulate(scene)
    np.testing.assert_allclose(states[-1].position[0], (-0.3 + V * states[-1].time_s, 0, 0), atol=1e-12)
    # Within 1 %: a kinematic body's contacts go through Bullet's multibody solver, which
    # may solve the impact a few micrometres early and lose (that distance) / dt of speed.
    assert states[-1].linear_velocity[1, 0] == pytest.approx(2 * V, rel=0.01)


# ---------------------------------------------------------------- worlds and determinism


def busy_scene(frames: int = 18) -> Scene:
    objects = [floor(friction=0.7)]
    for i in range(6):
        kind = dict(type="sphere", radius=0.08) if i % 2 else dict(type="box", size=[0.15, 0.12, 0.1])
        objects.append(
            dict(
                name=f"o{i}",
                shape=kind,
                position=[0.05 * (i % 3), 0.04 * (i % 2), 0.2 + 0.25 * i],
                rotation_deg=[10 * i, 20 * i, 5 * i],
                physics=dict(restitution=0.3),
            )
        )
    return make_scene(objects, frames=frames)


def same_states(a, b) -> bool:
    return all(
        np.array_equal(x.position, y.position)
        and np.array_equal(x.quaternion, y.quaternion)
        and np.array_equal(x.linear_velocity, y.linear_velocity)
        and np.array_equal(x.angular_velocity, y.angular_velocity)
        and x.contacts == y.contacts
        for x, y in zip(a, b)
    ) and len(a) == len(b)


def test_same_scene_gives_bit_identical_states():
    """Determinism: the same scene run twice gives equal arrays and contacts, bit for bit."""
    scene = busy_scene()
    first, second = simulate(scene), simulate(scene)
    assert any(s.contacts for s in first)
    assert same_states(first, second)


def test_two_worlds_stepped_alternately_match_separate_runs():
    """Each World has its own pybullet client: interleaving two of them changes nothing."""
    scene_a, scene_b = busy_scene(), make_scene([ball(position=(0, 0, 3.0))], frames=18)
    alone_a, alone_b = simulate(scene_a), simulate(scene_b)
    with World(scene_a) as wa, World(scene_b) as wb:
        mixed_a, mixed_b = [wa.initial_state()], [wb.initial_state()]
        for _ in range(scene_a.frame_count - 1):
            mixed_a.append(wa.step())
            mixed_b.append(wb.step())
    assert same_states(alone_a, mixed_a)
    assert same_states(alone_b, mixed_b)


def test_world_reports_names_instance_ids_and_closes_idempotently():
    scene = busy_scene(frames=3)
    world = World(scene)
    assert world.names == tuple(o.name for o in scene.objects)
    state = world.initial_state()
    assert state.frame == 0 and state.time_s == 0.0
    np.testing.assert_array_equal(state.instance_ids, np.arange(1, len(scene.objects) + 1))
    calls = []
    world2 = World(scene)
    assert len(world2.run(progress=lambda done, total: calls.append((done, total)))) == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]
    world2.close()
    world.close()
    world.close()
    with pytest.raises(Exception, match="closed"):
        world.step()


# ---------------------------------------------------------------- blow-ups


def test_speed_above_max_speed_raises_simulation_error_naming_object_frame_and_time():
    scene = make_scene([ball(linear_velocity=(600.0, 0, 0))])
    with World(scene) as world, pytest.raises(SimulationError) as info:
        world.run()
    err = info.value
    assert err.name == "ball" and err.frame == 0 and err.quantity == "speed"
    assert "'ball'" in str(err) and "frame 0" in str(err) and "max_speed" in str(err) and "timestep" in str(err)
    # It crosses process boundaries (dataset workers on Ray) whole: pickling rebuilds it
    # from what __reduce__ gives, keywords included.
    rebuild, args = err.__reduce__()
    back = rebuild(*args)
    assert type(back) is SimulationError and str(back) == str(err)
    assert (back.name, back.frame, back.time_s, back.quantity, back.value) == (
        err.name, err.frame, err.time_s, err.quantity, err.value)


def test_blow_up_during_the_run_names_the_frame():
    """Free fall passes v = 3 m/s at t = 3/g = 0.306 s: frame 8 at 24 fps (t = 0.333 s) is the first above."""
    scene = make_scene([ball(position=(0, 0, 10.0))], physics=dict(max_speed=3.0), frames=24)
    with World(scene) as world, pytest.raises(SimulationError) as info:
        world.run()
    assert info.value.frame == math.ceil(3.0 / G * 24) and info.value.time_s == pytest.approx(8 / 24)


# ---------------------------------------------------------------- meshes


def test_off_centre_mesh_reports_its_shape_frame_pose(tmp_path):
    """A slab whose vertices sit far from the file's origin and turned 30 deg in it: the pose is the
    file's frame, not pybullet's centre-of-mass and principal-axes frame.

    Dropped flat onto the floor it lands without turning (identity rotation), with its lowest
    vertex at z = 0, i.e. the file origin at z = -(0.7 - 0.05) (the slab's bottom is 0.05 below its centre).
    """
    slab = trimesh.creation.box([0.3, 0.2, 0.1])
    slab.apply_transform(trimesh.transformations.rotation_matrix(math.radians(30), [0, 0, 1]))
    offset = np.array([0.5, 0.3, 0.7])
    slab.apply_translation(offset)
    path = tmp_path / "offset_slab.obj"
    slab.export(path)
    start = (0.1, -0.2, -0.6)
    scene = make_scene([floor(), dict(name="slab", shape=dict(type="mesh", file=str(path)), position=list(start))], frames=24)
    with World(scene) as world:
        body = world.bodies[1]
        np.testing.assert_allclose(body.com_local, offset, atol=1e-9)
        assert abs(body.inertial_quat[3]) < 1 - 1e-6  # principal axes turned inside the file: a real test
        states = world.run()
    np.testing.assert_allclose(states[0].position[1], start, atol=1e-12)  # exactly what the scene says
    assert abs(abs(states[0].quaternion[1, 3]) - 1) < 1e-12
    end = states[-1]
    verts = geometry.build_mesh(scene.objects[1].shape).vertices
    world_verts = (pose_matrix(end.position[1], end.quaternion[1]) @ np.c_[verts, np.ones(len(verts))].T).T
    # Resting contacts settle within one step of gravity, g dt^2, of touching.
    settle = G * scene.physics_dt**2
    assert abs(world_verts[:, 2].min()) <= settle
    np.testing.assert_allclose(end.position[1], (start[0], start[1], -(0.7 - 0.05)), atol=1e-3)
    assert abs(abs(end.quaternion[1, 3]) - 1) < 1e-6
    # The reported velocity is the shape origin's, the derivative of the reported position: ~0 at rest.
    assert np.abs(end.linear_velocity[1]).max() < 1e-3


def cup_mesh(radius: float = 0.1, height: float = 0.12, wall: float = 0.012) -> trimesh.Trimesh:
    """A closed cup: the (r, z) profile of wall and bottom revolved about z (~500 faces)."""
    profile = np.array([(0, 0), (radius, 0), (radius, height), (radius - wall, height), (radius - wall, wall), (0, wall)])
    return trimesh.creation.revolve(profile, sections=48)


def test_concave_cup_is_decomposed_and_holds_a_ball(tmp_path, monkeypatch):
    """auto decomposition splits a cup into convex parts; a ball dropped in stays within r < R - wall."""
    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "cup.obj"
    cup_mesh().export(path)
    scene = make_scene(
        [
            floor(friction=0.8),
            dict(name="cup", shape=dict(type="mesh", file=str(path)), physics=dict(mass=0.5)),
            ball(radius=0.02, position=(0.01, 0.0, 0.25), mass=0.01),
        ],
        frames=24,
    )
    with World(scene) as world:
        assert world.bodies[1].collision_source == "decomposition" and world.bodies[1].convex_parts >= 3
        states = world.run()
    # The parts are cached by content: a second world reuses the one file, and no work files remain.
    cache = tmp_path / "cache" / "vhacd"
    before = sorted(cache.iterdir())
    with World(scene) as again:
        assert again.bodies[1].convex_parts == world.bodies[1].convex_parts
    assert sorted(cache.iterdir()) == before and all(f.suffix == ".obj" for f in before)
    cup_pos, ball_pos = states[-1].position[1], states[-1].position[2]
    assert np.linalg.norm(ball_pos[:2] - cup_pos[:2]) < 0.1 - 0.012
    assert 0.012 < ball_pos[2] - cup_pos[2] < 0.12  # above the bottom, below the rim
    assert abs(ball_pos[2] - cup_pos[2] - (0.012 + 0.02)) < 0.01  # resting on the bottom (within V-HACD's fit)


def test_convex_decomposition_setting_picks_hull_or_parts(tmp_path):
    """`never` collides with the convex hull (1 part) even for a cup; `auto` keeps a convex mesh's hull."""
    cup, box = tmp_path / "cup.obj", tmp_path / "box.obj"
    cup_mesh().export(cup)
    trimesh.creation.box([0.1, 0.2, 0.3]).export(box)
    scene = make_scene(
        [
            dict(name="cup", shape=dict(type="mesh", file=str(cup), convex_decomposition="never")),
            dict(name="box", shape=dict(type="mesh", file=str(box)), position=[1, 0, 0]),
        ]
    )
    with World(scene) as world:
        assert [(b.collision_source, b.convex_parts) for b in world.bodies] == [("convex-hull", 1), ("convex-hull", 1)]


def test_unreadable_mesh_file_names_the_file_and_the_object(tmp_path):
    bad = tmp_path / "broken.obj"
    bad.write_text("this is not a mesh\n")
    for path in (bad, tmp_path / "missing.obj"):
        scene = make_scene([dict(name="thing", shape=dict(type="mesh", file=str(path)))])
        with pytest.raises(BodyBuildError) as info:
            World(scene)
        assert "'thing'" in str(info.value) and str(path) in str(info.value)


# ---------------------------------------------------------------- mass properties


def test_mass_from_density_times_volume_and_default_density():
    """m = rho V, V = 4/3 pi r^3; no mass and no density: rho = DEFAULT_DENSITY."""
    r = 0.1
    with_density = ObjectSpec.model_validate(dict(name="a", shape=dict(type="sphere", radius=r), physics=dict(density=500)))
    default = ObjectSpec.model_validate(dict(name="b", shape=dict(type="sphere", radius=r)))
    volume = 4 / 3 * math.pi * r**3
    assert mass_properties(with_density).mass_kg == pytest.approx(500 * volume, rel=1e-12)
    assert mass_properties(default).mass_kg == pytest.approx(DEFAULT_DENSITY * volume, rel=1e-12)


def test_capsule_inertia_formula_matches_integrating_its_mesh():
    """Closed-form capsule inertia (cylinder + two hemispheres) vs trimesh's integral over build_mesh's capsule."""
    obj = ObjectSpec.model_validate(dict(name="c", shape=dict(type="capsule", radius=0.1, length=0.3), physics=dict(mass=2.0)))
    props = mass_properties(obj)
    mesh = geometry.build_mesh(obj.shape)
    numeric = np.diag(mesh.moment_inertia) / mesh.mass * 2.0
    # The tessellated surface lies inside the true one: about 1 % less inertia at 48 x 24 segments.
    np.testing.assert_allclose(props.principal_moments, numeric, rtol=0.02)


# ---------------------------------------------------------------- terrain


def test_ball_rolls_on_the_rendered_heightfield_surface_through_a_valley():
    """Physics geometry == rendered geometry: while rolling, the ball's centre stays r from the
    triangles ``geometry.build_mesh`` draws (a valley z = A (1 - cos(2 pi x / L)) / 2, extruded along y).

    Bounds: contacts are solved once surfaces overlap, by at most one step of travel v dt with
    v <= sqrt(2 g h) from energy; the vertical velocity changes per frame by at most
    (g + v^2 kappa_max) T on a smooth surface (kappa_max = A/2 (2 pi / L)^2), so an edge of the
    triangulation that kicked the ball would show as a larger jump.
    """
    r, A, L = 0.1, 0.5, 4.0
    terrain = dict(
        name="ground",
        shape=dict(type="heightfield", size=[L, 1.0], resolution=[81, 9], generator=dict(type="valley", amplitude=A)),
        physics=dict(body="static", friction=1.0),
    )
    x0 = 0.8
    h0 = A * (1 - math.cos(2 * math.pi * x0 / L)) / 2
    scene = make_scene([terrain, ball(radius=r, position=(x0, 0, h0 + r + 0.01), friction=1.0)], fps=24, frames=48)
    states = simulate(scene)
    # The drawn profile in x-z (every row along y is the same).
    verts = geometry.build_mesh(scene.objects[0].shape, scene.seed).vertices
    row = verts[np.isclose(verts[:, 1], verts[:, 1].min())]
    row = row[np.argsort(row[:, 0])]
    a, b = row[:-1][:, [0, 2]], row[1:][:, [0, 2]]

    def surface_distance(x: float, z: float) -> float:
        point = np.array([x, z])
        t = np.clip(((point - a) * (b - a)).sum(1) / ((b - a) ** 2).sum(1), 0, 1)
        return float(np.linalg.norm(point - (a + t[:, None] * (b - a)), axis=1).min())

    v_max = math.sqrt(2 * G * (h0 + 0.01))
    touching = [s for s in states if s.contacts]
    assert len(touching) > 40
    for s in touching:
        gap = surface_distance(s.position[1, 0], s.position[1, 2]) - r
        assert -v_max * scene.physics_dt <= gap <= 1e-6, (s.frame, gap)
    x = np.array([s.position[1, 0] for s in states])
    assert x.min() < -0.5  # it rolled through the bottom and up the other side
    kappa = A / 2 * (2 * math.pi / L) ** 2
    vz = np.array([s.linear_velocity[1, 2] for s in states])
    assert np.abs(np.diff(vz)).max() <= (G + v_max**2 * kappa) * scene.frame_dt_sim


def test_a_closed_mesh_whose_faces_wind_both_ways_still_gets_its_true_mass(tmp_path):
    """Qhull-style triangles (each face wound either way) of a 0.2 x 0.1 x 0.1 m brick: the solid is
    closed, so its mass is density x 0.002 m^3 and its inertia the brick's, as from a clean file."""
    from scipy.spatial import ConvexHull

    half = np.array([0.1, 0.05, 0.05])
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half
    faces = ConvexHull(corners).simplices.copy()
    faces[::2] = faces[::2, ::-1]  # make sure both windings occur
    path = tmp_path / "brick.obj"
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in corners) + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces))
    obj = ObjectSpec.model_validate(dict(name="brick", shape=dict(type="mesh", file=str(path)), physics=dict(density=500)))
    props = mass_properties(obj, geometry.build_mesh(obj.shape))
    assert props.mass_kg == pytest.approx(500 * 0.2 * 0.1 * 0.1, rel=1e-9)
    a, b, c = 2 * half
    expected = props.mass_kg / 12 * np.array(sorted([b * b + c * c, a * a + c * c, a * a + b * b]))
    np.testing.assert_allclose(sorted(props.principal_moments), expected, rtol=1e-9)
