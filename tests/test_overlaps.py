"""Objects that start inside each other are refused (or separated on request), so nothing teleports.

Depths and points are worked out by hand from the shapes; pybullet's GJK/EPA query
answers these primitive pairs to about 1e-6 m, so positions are compared at 1e-5 m.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import trimesh

from hybrid.cli import main
from hybrid.physics import PhysicsError
from hybrid.physics.overlaps import OverlapError, check_initial_overlaps, scene_overlaps
from hybrid.scene import SceneError, load_scene
from hybrid.scene.spec import Scene
from hybrid.world import World

from conftest import REPO, SCENES

G = 9.81
EPA = 1e-5  # metres; see the module docstring


def make_scene(objects: list[dict], **settings) -> Scene:
    settings.setdefault("frames", 6)
    return Scene.model_validate(dict(name="test", objects=objects, **settings))


def sphere(name: str, radius: float, position, **physics) -> dict:
    return dict(name=name, shape=dict(type="sphere", radius=radius), position=list(position), physics=physics)


def box(name: str, size, position, **physics) -> dict:
    return dict(name=name, shape=dict(type="box", size=list(size)), position=list(position), physics=physics)


FLOOR = dict(name="floor", shape=dict(type="plane"), physics=dict(body="static"))

# The case from the bug report: a 0.6 m crate with a 0.2 m ball placed inside it, off
# centre. The ball's centre (0.1, 0, 0.4) is 0.2 m from the crate's nearest faces
# (x = 0.3 and z = 0.6), so the ball reaches 0.2 + r = 0.4 m past that face: depth 0.4 m.
# Whichever of the two faces EPA picks, the midpoint of the deepest points (the face
# point and the ball's far point, 0.2 m either side of its centre) is the ball's centre.
CRATE = box("crate", (0.6, 0.6, 0.6), (0.0, 0.0, 0.3), mass=5.0)
BALL_IN_CRATE = sphere("ball", 0.2, (0.1, 0.0, 0.4), mass=1.0)

CRATE_YAML = """\
name: crate_overlap
fps: 24
frames: 6
objects:
  - name: floor
    shape: {type: plane, size: [8, 8]}
    physics: {body: static}
  - name: crate
    shape: {type: box, size: [0.6, 0.6, 0.6]}
    position: [0, 0, 0.3]
    physics: {mass: 5}
  - name: ball
    shape: {type: sphere, radius: 0.2}
    position: [0.1, 0, 0.4]
    physics: {mass: 1}
"""


# ---------------------------------------------------------------- refusing


def test_ball_inside_a_crate_is_refused_with_both_names_the_depth_and_the_point():
    scene = make_scene([FLOOR, CRATE, BALL_IN_CRATE])
    with pytest.raises(OverlapError) as info:
        World(scene)
    (overlap,) = info.value.overlaps
    assert (overlap.name_a, overlap.name_b, overlap.index_a, overlap.index_b) == ("crate", "ball", 1, 2)
    assert overlap.depth_m == pytest.approx(0.4, abs=EPA)
    np.testing.assert_allclose(overlap.point, (0.1, 0.0, 0.4), atol=EPA)
    message = str(info.value)
    assert "'crate'" in message and "'ball'" in message and "40.0 cm" in message
    assert "(0.100, 0.000, 0.400) m" in message and "resolve_overlaps" in message
    assert isinstance(info.value, PhysicsError)  # the CLI's exit 2 for scenes it cannot build
    # It crosses process boundaries (dataset workers) whole.
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == message and back.overlaps == info.value.overlaps
    # The load-time check, on a throwaway client, finds the same.
    assert scene_overlaps(scene) == [overlap]
    with pytest.raises(OverlapError):
        check_initial_overlaps(scene)


def test_load_time_issue_points_at_the_later_objects_position_in_the_file(tmp_path):
    path = tmp_path / "crate.yaml"
    path.write_text(CRATE_YAML)
    with pytest.raises(SceneError) as refused:  # `hybrid validate` reports it through load_scene
        load_scene(path)
    (issue,) = refused.value.issues
    # `position: [0.1, 0, 0.4]` of the ball: line 14, its value from column 15.
    assert (issue.file, issue.line, issue.column, issue.path) == (str(path), 14, 15, "objects[2].position")
    assert "'crate' and 'ball' overlap by 40.0 cm" in issue.message and "objects[1] and objects[2]" in issue.message


def test_render_refuses_it_with_exit_2_and_one_line(tmp_path, capsys):
    path = tmp_path / "crate.yaml"
    path.write_text(CRATE_YAML)
    out = tmp_path / "clip"
    assert main(["render", str(path), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{path}") and "overlap by 40.0 cm" in err and len(err.splitlines()) in (1, 2)
    assert not out.exists()


@pytest.mark.parametrize(
    "sunk_m, refused",
    # The tolerance is 1 mm: half of it passes, one and a half is refused.
    [(0.0, False), (0.0005, False), (0.0015, True), (0.05, True)],
)
def test_ball_sunk_into_the_floor_is_refused_beyond_one_millimetre(sunk_m, refused):
    scene = make_scene([FLOOR, sphere("ball", 0.1, (0.0, 0.0, 0.1 - sunk_m))])
    overlaps = scene_overlaps(scene)
    assert bool(overlaps) == refused
    if refused:
        # A ball of radius r with its centre at r - s over the plane z = 0 dips s into it,
        # deepest straight below the centre: points (0, 0, -s) on the ball and (0, 0, 0) on the plane.
        assert overlaps[0].depth_m == pytest.approx(sunk_m, abs=EPA)
        np.testing.assert_allclose(overlaps[0].point, (0.0, 0.0, -sunk_m / 2), atol=EPA)


def test_static_and_kinematic_bodies_may_overlap_each_other_but_not_a_dynamic_one():
    ramp = box("ramp", (1.0, 0.5, 0.1), (0.0, 0.0, 0.0), body="static")  # half sunk into the floor
    paddle = box("paddle", (0.4, 0.4, 0.1), (2.0, 0.0, 0.0), body="kinematic", linear_velocity=(0.0, 1.0, 0.0))
    assert scene_overlaps(make_scene([FLOOR, ramp, paddle])) == []
    # A 0.1 m ball centred 0.1 m above the paddle's middle reaches 0.05 m into its 0.05 m top half.
    ball = sphere("ball", 0.1, (2.0, 0.0, 0.1))
    (overlap,) = scene_overlaps(make_scene([FLOOR, ramp, paddle, ball]))
    assert (overlap.name_a, overlap.name_b) == ("paddle", "ball")
    assert overlap.depth_m == pytest.approx(0.05, abs=EPA)


def test_meshes_and_heightfields_use_their_collision_geometry(tmp_path):
    cube = tmp_path / "cube.obj"
    trimesh.creation.box(extents=(0.2, 0.2, 0.2)).export(cube)
    terrain = dict(
        name="terrain",
        shape=dict(type="heightfield", size=[2.0, 2.0], heights=[[0.0, 0.0], [0.0, 0.0]]),
        position=[5.0, 0.0, 1.0],  # raised clear of the floor, which is infinite
        physics=dict(body="static"),
    )
    # A 0.2 m cube (its convex hull) with its centre 0.08 m over the floor dips 0.02 m;
    # a 0.1 m ball centred 0.07 m over the flat terrain dips 0.03 m into its triangles.
    block = dict(name="block", shape=dict(type="mesh", file=str(cube)), position=[0.0, 0.0, 0.08], physics={})
    ball = sphere("ball", 0.1, (5.0, 0.0, 1.07))
    found = {(o.name_a, o.name_b): o.depth_m for o in scene_overlaps(make_scene([FLOOR, terrain, block, ball]))}
    assert found == {
        ("floor", "block"): pytest.approx(0.02, abs=EPA),
        ("terrain", "ball"): pytest.approx(0.03, abs=EPA),
    }


def test_a_decomposed_cup_resting_where_it_is_drawn_passes_and_sunk_is_refused():
    """Decomposition parts reach a few millimetres past the drawn cup (margin and V-HACD's fit):
    allowed for; 2 cm is not."""
    cup = dict(
        name="cup",
        shape=dict(type="mesh", file=str(SCENES / "assets" / "cup.obj")),
        rotation_deg=[180, 0, 0],
        physics={},
    )
    # The flipped cup's drawn rim is at z = position - 0.14 (mesh_tower.yaml rests it at 0.1405).
    on_floor = make_scene([FLOOR, dict(cup, position=[0.0, 0.0, 0.14])])
    assert scene_overlaps(on_floor) == []
    (overlap,) = scene_overlaps(make_scene([FLOOR, dict(cup, position=[0.0, 0.0, 0.12])]))
    assert (overlap.name_a, overlap.name_b) == ("floor", "cup") and overlap.depth_m > 0.02


# Slow (8 clips of every recipe): the fast suite validates every example scene, overlaps included
# (test_cli), and datasets redraw a clip whose objects start inside each other.
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_example_scene_and_recipe_clip_starts_without_overlaps():
    from hybrid.data.recipe import load_recipe
    from hybrid.data.sampler import sample_scene

    for path in sorted(SCENES.glob("*.yaml")):
        assert scene_overlaps(load_scene(path)) == [], path.name
    for path in sorted((REPO / "datasets").glob("*.yaml")):
        recipe = load_recipe(path)
        for index in range(8):
            scene = as_hulls(sample_scene(recipe, 0, index))
            assert scene_overlaps(scene) == [], (path.name, index)


def as_hulls(scene: Scene) -> Scene:
    """`scene` with every dynamic mesh colliding as its convex hull, which holds the drawn mesh: hulls
    that do not overlap mean drawn meshes that do not (and spare the test a decomposition per clip)."""
    objects = [
        obj.model_copy(update={"shape": obj.shape.model_copy(update={"convex_decomposition": "never"})})
        if obj.shape.type == "mesh"
        else obj
        for obj in scene.objects
    ]
    return scene.model_copy(update={"objects": objects})


# ---------------------------------------------------------------- separating


def test_resolve_overlaps_separates_before_frame_0_by_translation_only():
    """One pair, no floor: the pair is pushed apart by its depth d = 0.4 m along the contact
    normal, shared in inverse proportion to mass: the 1 kg ball moves d * 5 / 6, the 5 kg
    crate d * 1 / 6 the other way; orientations and (zero) velocities are untouched."""
    thrown = dict(BALL_IN_CRATE, physics=dict(mass=1.0, linear_velocity=[0.0, 1.0, 0.0]))
    scene = make_scene([CRATE, thrown], physics=dict(resolve_overlaps=True, gravity=(0, 0, 0)))
    with World(scene) as world:
        start = world.initial_state()
        crate_move = start.position[0] - np.array(CRATE["position"])
        ball_move = start.position[1] - np.array(BALL_IN_CRATE["position"])
        assert np.linalg.norm(ball_move) == pytest.approx(0.4 * 5 / 6, abs=EPA)
        assert np.linalg.norm(crate_move) == pytest.approx(0.4 / 6, abs=EPA)
        np.testing.assert_allclose(crate_move, -ball_move / 5, atol=EPA)
        np.testing.assert_allclose(start.quaternion, [[0, 0, 0, 1]] * 2, atol=1e-12)
        # The crate keeps its zero velocity and the ball its throw: separation adds no motion.
        np.testing.assert_array_equal(start.linear_velocity, [[0, 0, 0], [0, 1, 0]])
        np.testing.assert_array_equal(start.angular_velocity, 0.0)
        states = [start] + [world.step() for _ in range(scene.frame_count - 1)]
    assert_no_teleports(scene, states)


def test_resolve_overlaps_runs_the_bug_report_scene_without_teleports():
    scene = make_scene([FLOOR, CRATE, BALL_IN_CRATE], frames=24, physics=dict(resolve_overlaps=True))
    assert scene_overlaps(scene) == []  # nothing to refuse: it asked to be separated
    with World(scene) as world:
        states = world.run()
    np.testing.assert_array_equal(states[0].linear_velocity, 0.0)
    assert_no_teleports(scene, states)


def test_a_body_wedged_between_static_walls_cannot_be_separated():
    walls = [box(f"wall_{i}", (0.1, 1.0, 1.0), (x, 0.0, 0.5), body="static") for i, x in enumerate((-0.1, 0.1))]
    scene = make_scene(walls + [sphere("ball", 0.2, (0.0, 0.0, 0.5))], physics=dict(resolve_overlaps=True))
    with pytest.raises(OverlapError, match="could not separate .*'ball'"):
        World(scene)


# ---------------------------------------------------------------- velocities agree with motion


def teleport_excess(scene: Scene, states) -> np.ndarray:
    """(frames - 1, N) metres by which each body's displacement over a frame strays from
    the trapezoid of its reported velocities beyond what the time stepping explains (<= 0: fine).

    pybullet steps semi-implicit Euler, x_n+1 = x_n + dt v_n+1 (+ a split-impulse push
    s), so over a frame of T = k dt: D - T (v_0 + v_k) / 2 = dt sum_n (v_n - m) + S with
    m the mean of the end velocities. Each |v_n - m| is at most half the path length V
    of the velocity over the frame. Gravity adds g T to V, contact impulses that keep
    their direction within a frame (one bounce, one hit, steady friction) add at most
    |v_k - v_0| + g T, so |D - T m| <= T |v_k - v_0| / 2 + g T^2 + |S|. The split impulse
    lifts a body out of what it sank into during one step of its approach, |S| <= dt
    (max(|v_0|, |v_k|) + g T).
    """
    T, dt = scene.frame_dt_sim, scene.physics_dt
    excess = []
    for a, b in zip(states, states[1:]):
        v0, v1 = a.linear_velocity, b.linear_velocity
        stray = np.linalg.norm(b.position - a.position - T * (v0 + v1) / 2, axis=1)
        fastest = np.maximum(np.linalg.norm(v0, axis=1), np.linalg.norm(v1, axis=1))
        bound = T * np.linalg.norm(v1 - v0, axis=1) / 2 + G * T * T + dt * (fastest + G * T)
        excess.append(stray - bound)
    return np.array(excess)


def assert_no_teleports(scene: Scene, states) -> None:
    excess = teleport_excess(scene, states)
    frame, body = np.unravel_index(np.argmax(excess), excess.shape)
    name = states[0].names[body]
    assert excess.max() <= 0.0, f"{name} strays {excess[frame, body]:.4f} m past the bound in frame {frame + 1}"


def test_displacement_agrees_with_reported_velocities_in_bouncing_balls():
    scene = load_scene(SCENES / "bouncing_balls.yaml")
    with World(scene) as world:
        states = world.run()
    assert_no_teleports(scene, states)


def test_displacement_agrees_with_reported_velocities_through_hits_slides_and_stacks():
    objects = [
        dict(FLOOR, physics=dict(body="static", friction=0.5, restitution=0.5)),
        # A crate sliding to a stop: mu g = 4.9 m/s^2 takes 3 m/s away in 0.6 s.
        box("slider", (0.3, 0.3, 0.3), (-1.0, 1.0, 0.15), linear_velocity=(3.0, 0.0, 0.0)),
        # A ball rolled into a resting one, then both bouncing off the floor from a drop.
        sphere("striker", 0.1, (-1.0, 0.0, 0.3), linear_velocity=(4.0, 0.0, 0.0), restitution=0.9),
        sphere("target", 0.1, (0.0, 0.0, 0.1), restitution=0.9),
        # A two-box stack that topples when the top one is placed off centre.
        box("base", (0.2, 0.2, 0.2), (1.0, 0.0, 0.1)),
        box("top", (0.2, 0.2, 0.2), (1.08, 0.0, 0.3)),
    ]
    scene = make_scene(objects, fps=30, frames=45)
    with World(scene) as world:
        states = world.run()
    assert_no_teleports(scene, states)
    # Something did happen: the striker hit the target and the slider stopped.
    assert states[-1].position[3, 0] > 0.2 and abs(states[-1].linear_velocity[1, 0]) < 1e-3


def test_the_bound_catches_the_teleport_that_the_overlap_check_prevents(monkeypatch):
    """Without the check, the ball inside the crate leaves it in a few steps while its velocity stays near 0."""
    import hybrid.world

    monkeypatch.setattr(hybrid.world, "refuse_overlaps", lambda *args: None)
    scene = make_scene([FLOOR, CRATE, BALL_IN_CRATE], fps=24, frames=4)
    with World(scene) as world:
        states = world.run()
    assert teleport_excess(scene, states).max() > 0.05
