"""Breakable objects in a World: the threshold, the switch, the roster and its ids (hybrid/physics/breakables.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid.physics.breakables import event_fragments, fragment_masses
from hybrid.roster import Roster
from hybrid.scene.errors import SceneError
from hybrid.scene.spec import Scene
from hybrid.transforms import quat_to_matrix
from hybrid.world import World

G = 9.81


def make_scene(objects: list[dict], **settings) -> Scene:
    settings.setdefault("frames", 24)
    return Scene.model_validate(dict(name="test", objects=objects, **settings))


def floor(**physics) -> dict:
    return dict(name="floor", shape=dict(type="plane"), physics=dict(body="static", **physics))


def breakable_ball(z: float, *, mass=0.2, radius=0.05, restitution=0.5, **breakable) -> dict:
    breakable.setdefault("threshold_Ns", 0.8)
    breakable.setdefault("pieces", 12)
    return dict(
        name="ball", shape=dict(type="sphere", radius=radius), position=[0.0, 0.0, z],
        physics=dict(mass=mass, restitution=restitution, breakable=breakable),
    )


def simulate(scene: Scene):
    with World(scene) as world:
        return world.run()


def test_the_roster_names_fragment_slots_after_the_scene_objects_and_rebreak_slots_after_those():
    scene = make_scene([floor(), breakable_ball(1.0, pieces=3, rebreak=True), dict(name="cube", shape=dict(type="box", size=[0.1, 0.1, 0.1]))])
    roster = Roster.from_scene(scene)
    assert roster.names[:3] == ("floor", "ball", "cube")
    assert roster.names[3:6] == ("ball#0", "ball#1", "ball#2")
    assert roster.names[6:] == ("ball#0.0", "ball#0.1", "ball#1.0", "ball#1.1", "ball#2.0", "ball#2.1")
    assert roster.slots[1] == (3, 4, 5) and roster.slots[3] == (6, 7) and roster.slots[2] == ()
    assert [roster.depth(i) for i in (0, 1, 3, 8)] == [0, 0, 1, 2]
    assert roster.root[8] == 1 and roster.parent[8] == 4


# A ball of mass m dropped from h hits the floor at v = sqrt(2 g h) and, with restitution
# e, takes J = m v (1 + e) within the step it lands in (hybrid.physics.breakables), so
# it breaks from h* = (threshold / (m (1 + e)))^2 / (2 g) up. The discrete fall's
# landing speed differs from sqrt(2 g h) by at most one step of gravity, g dt = 0.04
# m/s of 2.7 m/s (1.5 %); drops at 0.9 h* and 1.1 h* take 5 % less and more impulse
# than the threshold, well outside that.
@pytest.mark.parametrize("share, breaks", [(0.9, False), (1.1, True)])
def test_a_drop_breaks_the_object_from_the_height_its_impact_impulse_gives(share, breaks):
    m, e, threshold, radius = 0.2, 0.5, 0.8, 0.05
    h_star = (threshold / (m * (1 + e))) ** 2 / (2 * G)
    h = share * h_star
    scene = make_scene([floor(restitution=1.0), breakable_ball(radius + h, threshold_Ns=threshold)], frames=24)
    states = simulate(scene)
    broke = states[-1].breaks
    assert bool(broke) == breaks
    if breaks:
        (event,) = broke
        assert event.impulse_Ns == pytest.approx(m * math.sqrt(2 * G * h) * (1 + e), rel=0.02)
        np.testing.assert_allclose(event.impact_point, (0.0, 0.0, 0.0), atol=2e-3)  # the ball's lowest point
    else:  # it bounced instead, as one body
        assert states[-1].present_mask.tolist()[:2] == [True, True]


def _momenta(scene, state, event, mass=0.2):
    """Total momentum and angular momentum about the parent's centre of mass at the break of the fragments, from the State
    alone: each fragment's mass and inertia from its geometry, its motion from its row."""
    roster = Roster.from_scene(scene)
    fragments = event_fragments(scene, roster, state.breaks, event)
    masses = fragment_masses(mass, fragments)
    density = mass / sum(f.volume for f in fragments)
    P, L, centres = np.zeros(3), np.zeros(3), []
    for slot, frag, m in zip(event.fragments, fragments, masses):
        R = quat_to_matrix(state.quaternion[slot])
        lever = R @ frag.centroid
        c = state.position[slot] + lever
        w = state.angular_velocity[slot]
        v = state.linear_velocity[slot] + np.cross(w, lever)
        centres.append((m, c, v, R @ frag.inertia(density) @ R.T @ w))
    com = np.asarray(event.centre_of_mass)
    for m, c, v, spin in centres:
        P += m * v
        L += m * np.cross(c - com, v) + spin
    return P, L


@pytest.mark.parametrize("kick", [0.0, 0.5])
def test_momentum_and_angular_momentum_come_through_the_switch(kick):
    """No gravity, one physics step per frame (so the frame of the break is read right after the
    switch): a spinning ball hits a wall and breaks; its fragments carry exactly the momentum and
    angular momentum the parent had when it broke (1e-6 relative; the kick is free of both)."""
    wall = dict(name="wall", shape=dict(type="box", size=[0.1, 1.0, 1.0]), position=[0.5, 0.0, 0.0],
                physics=dict(body="static", restitution=1.0))
    ball = breakable_ball(0.0, threshold_Ns=0.3, pieces=16, kick=kick, pattern="impact")
    ball["position"] = [0.0, 0.0, 0.0]
    ball["physics"].update(linear_velocity=[4.0, 0.5, 0.0], angular_velocity=[3.0, -2.0, 5.0])
    scene = make_scene([wall, ball], fps=240, frames=40, physics=dict(gravity=[0.0, 0.0, 0.0]))
    assert scene.steps_per_frame == 1
    states = simulate(scene)
    (event,) = states[-1].breaks
    state = states[event.frame]
    assert state.present_mask[list(event.fragments)].all() and not state.present_mask[1]
    assert states[event.frame - 1].present_mask[1]
    P, L = _momenta(scene, state, event)
    scale_p = np.linalg.norm(event.momentum)
    np.testing.assert_allclose(P, event.momentum, rtol=0, atol=1e-6 * scale_p)
    scale_l = np.linalg.norm(event.angular_momentum) + scale_p * 0.05  # |L| or p x radius
    np.testing.assert_allclose(L, event.angular_momentum, rtol=0, atol=1e-6 * scale_l)
    # A breaking body bears only its threshold: the ball (0.2 kg at 4 m/s) keeps m v - 0.3 N s
    # of its momentum into the wall, instead of bouncing off it as a whole (hybrid.physics.breakables).
    assert event.momentum[0] == pytest.approx(0.2 * 4.0 - 0.3, rel=0.02)


def test_fragment_rows_follow_their_parent_until_they_exist_and_ids_stay_fixed():
    scene = make_scene([floor(), breakable_ball(0.6, threshold_Ns=0.3)], frames=20)
    states = simulate(scene)
    (event,) = states[-1].breaks
    for s in states:
        assert len(s.names) == 2 + 12 and s.instance_ids.tolist() == list(range(1, 15))
        if s.frame < event.frame:
            assert s.present_mask.tolist() == [True, True] + [False] * 12
            for slot in event.fragments:  # a fragment's frame is its parent's until it exists
                np.testing.assert_array_equal(s.position[slot], s.position[1])
                np.testing.assert_array_equal(s.quaternion[slot], s.quaternion[1])
        else:
            assert s.present_mask.tolist() == [True, False] + [True] * 12
            np.testing.assert_array_equal(s.position[1], states[event.frame].position[1])  # frozen at the break
    assert event.fragments == tuple(range(2, 14))


def test_the_same_scene_breaks_into_the_same_bytes():
    scene = make_scene([floor(), breakable_ball(0.6, threshold_Ns=0.3, pattern="impact", kick=0.2)], frames=20)
    a, b = simulate(scene), simulate(scene)
    for sa, sb in zip(a, b):
        for name in ("position", "quaternion", "linear_velocity", "angular_velocity", "present"):
            assert getattr(sa, name).tobytes() == getattr(sb, name).tobytes()
        assert sa.breaks == sb.breaks or repr(sa.breaks) == repr(sb.breaks)


def test_fragments_break_again_when_the_preset_allows():
    ice = breakable_ball(1.2, preset="ice", threshold_Ns=0.02, pieces=8, kick=0.0)
    scene = make_scene([floor(restitution=1.0), ice], frames=48)
    states = simulate(scene)
    roster = Roster.from_scene(scene)
    events = states[-1].breaks
    assert events[0].parent == 1
    assert any(roster.depth(e.parent) == 1 for e in events[1:]), "no fragment broke again"
    for e in events[1:]:
        assert e.fragments == roster.slots[e.parent]
    # Whatever broke is gone and what it broke into is there: the mass is all accounted for.
    last = states[-1].present_mask
    for e in events:
        assert not last[e.parent]


@pytest.mark.parametrize(
    "objects, words",
    [
        ([dict(name="k", shape=dict(type="box", size=[0.1, 0.1, 0.1]), physics=dict(body="kinematic", breakable=dict(preset="glass")))],
         "kinematic object cannot break"),
        ([dict(name="p", shape=dict(type="plane"), physics=dict(body="static", breakable=dict(preset="glass")))],
         "no volume to break"),
        ([dict(name="b", shape=dict(type="box", size=[0.1, 0.1, 0.1]), physics=dict(breakable=dict(pieces=4)))], "needs `threshold_Ns`"),
        ([dict(name="b", shape=dict(type="box", size=[0.1, 0.1, 0.1]), physics=dict(breakable=dict(preset="glass", pieces=2))),
          dict(name="b#1", shape=dict(type="box", size=[0.1, 0.1, 0.1]), position=[3, 0, 0])], "also the name of a fragment"),
    ],
)
def test_bad_breakables_are_refused_with_the_place_and_the_fix(objects, words):
    with pytest.raises((SceneError, ValueError), match=words):
        make_scene(objects)


def test_a_ball_goes_through_a_pane_keeping_what_the_pane_could_not_take():
    """A static glass pane (threshold 0.3 N s) hit by a 0.5 kg ball at 6 m/s breaks in the step of
    impact and takes only its threshold: the ball flies on at 6 - 0.3 / 0.5 = 5.4 m/s through the
    opening (no gravity: nothing else changes its speed until it meets a fragment). The pane never
    moved, so its fragments start at rest: the 0.3 N s it bore went into what held it."""
    pane = dict(name="pane", shape=dict(type="box", size=[0.6, 0.006, 0.6]), position=[0.0, 0.5, 0.0],
                physics=dict(body="static", density=2500, breakable=dict(preset="glass", pieces=24, kick=0.0)))
    ball = dict(name="ball", shape=dict(type="sphere", radius=0.04), position=[0.0, 0.0, 0.0],
                physics=dict(mass=0.5, restitution=0.5, linear_velocity=[0.0, 6.0, 0.0]))
    scene = make_scene([pane, ball], fps=240, frames=40, physics=dict(gravity=[0.0, 0.0, 0.0]))
    states = simulate(scene)
    (event,) = states[-1].breaks
    after = states[event.frame]
    assert after.linear_velocity[1, 1] == pytest.approx(6.0 - 0.3 / 0.5, rel=0.01)
    assert after.position[1, 1] > 0.5 - 0.04  # at the pane, not sent back
    np.testing.assert_allclose(event.momentum, (0.0, 0.0, 0.0), atol=1e-12)  # a static pane had none
    P, _ = _momenta(scene, after, event, mass=2500 * 0.6 * 0.006 * 0.6)
    np.testing.assert_allclose(P, (0.0, 0.0, 0.0), atol=1e-9)


def test_a_box_breaks_into_fragments_that_tile_it_exactly():
    """The fragments of a box are cut from the box itself (not a decomposition's hulls): their volumes
    sum to a b c and every vertex lies within the box, to rounding."""
    size = np.array([0.12, 0.08, 0.05])
    box = dict(name="box", shape=dict(type="box", size=size.tolist()), position=[0.0, 0.0, 0.5],
               physics=dict(mass=0.3, breakable=dict(threshold_Ns=0.2, pieces=20, pattern="impact")))
    scene = make_scene([floor(), box], frames=16)
    states = simulate(scene)
    (event,) = states[-1].breaks
    fragments = event_fragments(scene, Roster.from_scene(scene), states[-1].breaks, event)
    assert len(fragments) == 20
    assert sum(f.volume for f in fragments) == pytest.approx(size.prod(), rel=1e-9)
    corners = np.concatenate([p.vertices for f in fragments for p in f.pieces])
    assert (np.abs(corners) <= size / 2 * (1 + 1e-12)).all()


@pytest.mark.parametrize("shape", [
    dict(type="box", size=[0.1, 0.07, 0.05]),
    dict(type="lathe", sections=16, profile=[[0, 0], [0.05, 0], [0.06, 0.08], [0.052, 0.08], [0.044, 0.008], [0, 0.008]]),
])
def test_no_fragment_overlaps_another_when_the_world_spawns_them(shape):
    """Right after the switch (one physics step per frame, so the break frame's State is read then),
    no two fragments are more than 0.5 mm into each other by pybullet's own distance query: convex
    pieces collide with no margin, pieces of a compound (the bowl's wedges) are shrunk by theirs."""
    from hybrid.physics.pybullet_quiet import pybullet as p

    obj = dict(name="thing", shape=shape, position=[0.0, 0.0, 0.3],
               physics=dict(density=2000, breakable=dict(threshold_Ns=0.1, pieces=24, pattern="impact", kick=0.0)))
    scene = make_scene([floor(), obj], fps=240, frames=120)
    with World(scene) as world:
        while not world._breaks:
            world.step()
        ids = [int(world._body_id[i]) for i in world._breaks[0].fragments]
        worst = min(
            (pt[8] for a in ids for b in ids if a < b
             for pt in p.getClosestPoints(a, b, 0.002, physicsClientId=world._client)),
            default=0.0,
        )
    assert worst >= -0.5e-3, worst


def test_two_breakables_that_break_each_other_conserve_the_total_momentum():
    """Two glass balls thrown at each other (no gravity) break in the same step; every body's momentum
    read from the States, fragments' from their geometry and rows, adds up to the same total before
    and after (the switch and the take-back of what they could not bear both conserve it)."""
    def ball(name, x, vx):
        return dict(name=name, shape=dict(type="sphere", radius=0.04), position=[x, 0.0, 0.0],
                    physics=dict(mass=0.2, restitution=0.5, linear_velocity=[vx, 0.3, 0.0],
                                 breakable=dict(threshold_Ns=0.2, pieces=8, kick=0.0)))
    scene = make_scene([ball("a", -0.2, 3.0), ball("b", 0.2, -2.0)], fps=240, frames=40,
                       physics=dict(gravity=[0.0, 0.0, 0.0]))
    states = simulate(scene)
    events = states[-1].breaks
    assert sorted(e.parent for e in events) == [0, 1] and events[0].step == events[1].step

    def total(state):
        P = np.zeros(3)
        for i in np.flatnonzero(state.present_mask):
            if i < 2:
                P += 0.2 * state.linear_velocity[i]  # a ball's shape frame is its centre of mass
                continue
            event = next(e for e in state.breaks if i in e.fragments)
            fragments = event_fragments(scene, Roster.from_scene(scene), state.breaks, event)
            k = event.fragments.index(i)
            m = fragment_masses(0.2, fragments)[k]
            lever = quat_to_matrix(state.quaternion[i]) @ fragments[k].centroid
            P += m * (state.linear_velocity[i] + np.cross(state.angular_velocity[i], lever))
        return P

    before, after = total(states[0]), total(states[events[0].frame])
    np.testing.assert_allclose(after, before, atol=1e-9 * np.linalg.norm(before) + 1e-12)


def test_wood_splinters_along_its_longest_axis():
    """The wood preset cuts cells 5 times longer along the plank (its longest axis, x) than across."""
    plank = dict(name="plank", shape=dict(type="box", size=[0.6, 0.06, 0.03]), position=[0.0, 0.0, 0.6],
                 rotation_deg=[0, 10, 0], physics=dict(density=600, breakable=dict(preset="wood", threshold_Ns=0.2)))
    scene = make_scene([floor(), plank], frames=24)
    states = simulate(scene)
    (event,) = states[-1].breaks
    assert event.pattern.grain == (1.0, 0.0, 0.0) and event.pattern.grain_stretch == 5.0
    fragments = event_fragments(scene, Roster.from_scene(scene), states[-1].breaks, event)
    extents = np.array([np.ptp(np.concatenate([p.vertices for p in f.pieces]), axis=0) for f in fragments])
    # Ten cells without grain split the 0.6 m plank into blocks of 8 to 10 cm along x (median over
    # seeds 0-4: 0.08 to 0.096 m); stretched 5 times they overlap along it as splinters of 0.2 m.
    assert np.median(extents[:, 0]) > 0.12


GAS_BREAK = """
name: gas_break
fps: 24
frames: 16
objects:
  - name: floor
    shape: {type: plane}
    physics: {body: static}
  - name: box
    shape: {type: box, size: [0.3, 0.3, 0.3]}
    position: [0.0, 0.0, 0.6]
    physics: {density: 400, breakable: {threshold_Ns: 1.0, pieces: 6, kick: 0.0}}
fields:
  gas:
    domain: {min: [-0.6, -0.6, 0.0], max: [0.6, 0.6, 1.2]}
    resolution: 16
    boundaries: {z_max: open}
"""


def test_the_fluids_see_the_fragments_and_not_the_broken_object():
    """A box breaks on the floor inside a smoke domain: from then on the gas's solid cells are the
    fragments' (each one's hull, ids after the scene's), none is the box's, and they cover about the
    box's volume where it broke (cells of 7.5 cm: the count is the volume to a layer of cells)."""
    from hybrid.scene import load_scene_text

    scene = load_scene_text(GAS_BREAK, "gas_break.yaml")
    with World(scene) as world:
        states = world.run()
        (event,) = states[-1].breaks
        colliders = world.fields.colliders
        kinds = colliders.kind.to_numpy()[: len(world.names)]
        body = world.fields.gas.body.to_numpy()
    assert kinds[1] == -1 and (kinds[list(event.fragments)] >= 0).all()
    marked = set(np.unique(body).tolist()) - {-1}
    assert 1 not in marked and marked <= set(event.fragments) and len(marked) >= 3
    dx = 1.2 / 16
    volume = (body >= 0).sum() * dx**3
    assert 0.3**3 / 3 < volume < 3 * 0.3**3  # fragments spread on the floor: same order as the box


def test_breakables_in_a_scene_with_a_liquid_are_refused_with_the_reason():
    from hybrid.scene import SceneError, load_scene_text

    text = GAS_BREAK.replace("""  gas:
    domain: {min: [-0.6, -0.6, 0.0], max: [0.6, 0.6, 1.2]}
    resolution: 16
    boundaries: {z_max: open}""", """  liquid:
    domain: {min: [-0.6, -0.6, 0.0], max: [0.6, 0.6, 1.2]}
    resolution: 16
    fill:
      - {min: [-0.6, -0.6, 0.0], max: [0.6, 0.6, 0.2]}""")
    with pytest.raises(SceneError, match=r"liquid\.yaml:12:.*not supported yet.*unstable.*remove `breakable`"):
        load_scene_text(text, "liquid.yaml")
