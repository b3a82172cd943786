"""The switch from an intact body to its fragments (hybrid/physics/breaking.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hybrid.physics.breaking import fragment_motion, spawn_fragments
from hybrid.physics.fracture import FracturePattern, fracture
from hybrid.transforms import quat_to_matrix

# The fragments tile the parent exactly (test_fracture.py: volumes and inertias to 1e-9),
# so what the switch conserves it conserves to rounding; the issue asks for 1e-6.
CONSERVED = 1e-9
SIZE = np.array([0.3, 0.2, 0.1])
DENSITY = 2500.0


def _parent():
    box = np.array(list(itertools.product(*[(-h, h) for h in SIZE / 2])))
    fragments = fracture([box], FracturePattern(pieces=48, seed=11))
    mass = DENSITY * SIZE.prod()
    a, b, c = SIZE
    inertia = mass / 12 * np.diag([b * b + c * c, a * a + c * c, a * a + b * b])
    return fragments, mass, inertia


POSITION = np.array([0.4, -0.2, 1.3])
QUAT = np.array([0.2, -0.3, 0.1, 0.9]) / np.linalg.norm([0.2, -0.3, 0.1, 0.9])
V = np.array([1.5, -0.4, -3.0])
W = np.array([2.0, 7.0, -1.0])


def _world(fragments):
    R = quat_to_matrix(QUAT)
    masses = np.array([DENSITY * f.volume for f in fragments])
    centres = POSITION + np.array([f.centroid for f in fragments]) @ R.T
    inertias = [R @ f.inertia(DENSITY) @ R.T for f in fragments]
    return R, masses, centres, inertias


def _totals(masses, centres, inertias, linear, angular, about):
    momentum = (masses[:, None] * linear).sum(axis=0)
    spin = sum(I @ w for I, w in zip(inertias, angular))
    orbit = (masses[:, None] * np.cross(centres - about, linear)).sum(axis=0)
    energy = 0.5 * (masses * (linear**2).sum(axis=1)).sum() + 0.5 * sum(w @ I @ w for I, w in zip(inertias, angular))
    return momentum, spin + orbit, energy


@pytest.mark.parametrize("kick", [0.0, 0.8])
def test_the_switch_conserves_momentum_and_adds_exactly_the_kicks_energy(kick):
    """A 0.3 x 0.2 x 0.1 m box (15 kg) moving at V and spinning at W breaks into 48 fragments:
    momentum M V, angular momentum I W about the centre of mass, and kinetic energy
    1/2 M V^2 + 1/2 W I W (+ the kick's energy) all come through."""
    fragments, mass, inertia_body = _parent()
    R, masses, centres, inertias = _world(fragments)
    assert masses.sum() == pytest.approx(mass, rel=CONSERVED)
    impact = POSITION + R @ np.array([0.15, 0.0, 0.0])
    motion = fragment_motion(masses, centres, POSITION, V, W, kick_energy=kick, kick_origin=impact)
    momentum, angular, energy = _totals(masses, centres, inertias, motion.linear, motion.angular, POSITION)
    inertia = R @ inertia_body @ R.T
    assert np.abs(momentum - mass * V).max() <= CONSERVED * mass * np.linalg.norm(V)
    assert np.abs(angular - inertia @ W).max() <= CONSERVED * np.linalg.norm(inertia @ W)
    parent_energy = 0.5 * mass * V @ V + 0.5 * W @ inertia @ W
    assert energy == pytest.approx(parent_energy + kick, rel=CONSERVED)
    if kick:
        # The kick points away from the impact: fragments nearer it fly off faster relative to the body.
        relative = motion.linear - (V + np.cross(W, centres - POSITION))
        outward = np.einsum("ij,ij->i", relative, centres - impact)
        assert (outward > 0).mean() > 0.75


def test_spawned_bodies_carry_the_parents_momentum_in_pybullet():
    """The fragments as pybullet bodies: masses, principal inertias and velocities read back
    from pybullet give the parent's momentum and angular momentum (1e-6, the issue's bound;
    pybullet stores them in double precision)."""
    from hybrid.physics.pybullet_quiet import pybullet as p

    fragments, mass, inertia_body = _parent()
    R, masses, centres, _ = _world(fragments)
    motion = fragment_motion(masses, centres, POSITION, V, W, kick_energy=0.3)
    client = p.connect(p.DIRECT)
    try:
        bodies = spawn_fragments(client, fragments, masses, POSITION, QUAT, motion)
        lin, ang, pos, inertias, ms = [], [], [], [], []
        for b in bodies:
            info = p.getDynamicsInfo(b.body_id, -1, physicsClientId=client)
            ms.append(info[0])
            x, q = p.getBasePositionAndOrientation(b.body_id, physicsClientId=client)
            v, w = p.getBaseVelocity(b.body_id, physicsClientId=client)
            Rq = quat_to_matrix(np.asarray(q))
            inertias.append(Rq @ np.diag(info[2]) @ Rq.T)
            lin.append(v), ang.append(w), pos.append(x)
    finally:
        p.disconnect(client)
    ms, lin, ang, pos = (np.asarray(a, dtype=np.float64) for a in (ms, lin, ang, pos))
    assert np.allclose(pos, centres, atol=1e-12)
    momentum, angular, _ = _totals(ms, pos, inertias, lin, ang, POSITION)
    inertia = R @ inertia_body @ R.T
    assert np.abs(momentum - mass * V).max() <= 1e-6 * mass * np.linalg.norm(V)
    assert np.abs(angular - inertia @ W).max() <= 1e-6 * np.linalg.norm(inertia @ W)


def _contact_distances(parts, pieces, seed):
    from hybrid.physics.pybullet_quiet import pybullet as p

    fragments = fracture(parts, FracturePattern(pieces=pieces, seed=seed))
    masses = np.array([1000.0 * f.volume for f in fragments])
    centres = np.array([f.centroid for f in fragments])
    motion = fragment_motion(masses, centres, (masses[:, None] * centres).sum(axis=0) / masses.sum(), np.zeros(3), np.zeros(3))
    client = p.connect(p.DIRECT)
    try:
        spawn_fragments(client, fragments, masses, np.zeros(3), (0.0, 0.0, 0.0, 1.0), motion)
        p.performCollisionDetection(physicsClientId=client)
        return fragments, [c[8] for c in p.getContactPoints(physicsClientId=client)]
    finally:
        p.disconnect(client)


def test_no_spawned_fragment_overlaps_another_even_across_a_decompositions_parts():
    """The issue's bound, pybullet contact distance >= -0.5 mm at spawn: for the fragments of a
    box, and of an L of two convex parts, where fragments that span the joint are compounds
    whose pieces pybullet pads by 1 mm (shrunk by it first, COMPOUND_MARGIN)."""
    box = np.array(list(itertools.product(*[(-h, h) for h in SIZE / 2])))
    _, distances = _contact_distances([box], 64, 1)
    assert len(distances) > 64 and min(distances) >= -0.5e-3
    bar = np.array(list(itertools.product((-0.1, 0.1), (-0.025, 0.025), (-0.025, 0.025))))
    post = np.array(list(itertools.product((0.05, 0.1), (0.025, 0.175), (-0.025, 0.025))))
    fragments, distances = _contact_distances([bar, post], 24, 5)
    assert any(len(f.pieces) == 2 for f in fragments)
    assert len(distances) > 24 and min(distances) >= -0.5e-3
