"""Objects that start inside each other: found with pybullet's own collision query, refused or separated.

Why refuse. Bullet resolves penetration with split impulses (see ``World._configure``):
a separate position correction that moves bodies apart without giving them any
velocity. For the fraction of a millimetre that a resting contact sinks per step this
is what keeps bounces exact; for a ball placed 20 cm inside a crate it moves both by
centimetres per step while their velocities stay zero, so the first frames show
objects jumping with no motion to explain it. An initial placement that overlaps
deeper than ``TOLERANCE_M`` is therefore a scene error, unless the scene asks for
``physics.resolve_overlaps``, which separates the bodies before frame 0 instead.

Which pairs. Only pairs where the solver would move something: dynamic with dynamic,
static or kinematic. Static and kinematic bodies never respond to contacts (a
kinematic one follows its track whatever it touches), so two of them may overlap
freely, as a ramp sunk into the floor or a paddle that sweeps through a wall do.

How. The bodies are built exactly as a World builds them and every candidate pair
(their bounding boxes overlap) is asked ``p.getClosestPoints``, so the depth is
Bullet's for every shape kind: primitives, convex hulls, decomposition parts,
triangle meshes and heightfields. Static and kinematic meshes and heightfields are
triangle surfaces to Bullet, not solids: a body wholly inside one, touching none of
its triangles, does not collide with it and is not reported.

Where collision and drawn surfaces differ. Most shapes collide exactly where they
are drawn. A convex decomposition does not: its parts keep pybullet's 1 mm margin
(``hybrid.physics.bodies``) and V-HACD's hulls reach past the drawn surface by up to
about two voxels of its grid (1.3 and 1.7 voxels measured for the cup and the vase
in scenes/assets, 3.3 and 5.9 mm), so a cup placed exactly on a plank reads a few
millimetres deep. Such a body gets an allowance (``surface_allowances``) on top of
``TOLERANCE_M``. The convex hull of a nearly convex mesh (``auto`` takes one that
fills 97 % of its hull as convex) also covers its dents; that is not allowed for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from hybrid.physics.pybullet_quiet import pybullet as p

from hybrid import geometry
from hybrid.physics.bodies import Body, create_body
from hybrid.physics.errors import BodyBuildError, PhysicsError
from hybrid.scene.spec import Scene

# Deeper than this (beyond the allowances) is refused: far more than a resting
# contact sinks in one step (g dt^2 = 0.17 mm at 1/240 s), far less than anyone sees.
TOLERANCE_M = 1e-3

# pybullet's collision margin on each convex part of a decomposition (kept, see bodies.py).
PART_MARGIN_M = 1e-3
# V-HACD voxelises on at least this many cells along the longest side (decomposition.py)
# and its hulls reach up to about this many cells past the surface (see the docstring).
VHACD_CELLS = 64
VHACD_REACH_CELLS = 2.0

# Separation pushes each overlapping pair apart per round; a pile of bodies that push
# each other into a third needs a few rounds, and one that still overlaps after this
# many is wedged (e.g. between two static walls closer than its size).
MAX_SEPARATION_ROUNDS = 200
# Rounds stop once no pair overlaps by more than this beyond its allowances: well
# below the refusal tolerance so a separated scene passes the check with room to spare.
SEPARATION_GOAL_M = 1e-5

# At most this many pairs are named in one error; a scene with more has one problem
# that the first few already show.
MAX_REPORTED = 20


@dataclass(frozen=True)
class Overlap:
    """Two objects that interpenetrate.

    ``index_a`` < ``index_b`` are scene indices, ``name_a`` and ``name_b`` their names.
    ``depth_m``: Bullet's penetration depth of the collision shapes in metres (> 0).
    ``excess_m``: how much of it is beyond the pair's allowance (what separation removes).
    ``point``: world point (metres) halfway between the deepest points on the two
    surfaces. ``normal``: unit vector (world axes) along which moving ``a`` (or ``b``
    the opposite way) separates them.
    """

    index_a: int
    index_b: int
    name_a: str
    name_b: str
    depth_m: float
    excess_m: float
    point: tuple[float, float, float]
    normal: tuple[float, float, float]

    def describe(self) -> str:
        """One sentence naming both objects, the depth and where."""
        x, y, z = self.point
        return (
            f"objects {self.name_a!r} and {self.name_b!r} overlap by {_length(self.depth_m)} "
            f"at ({x:.3f}, {y:.3f}, {z:.3f}) m in their initial placement"
        )


class OverlapError(PhysicsError, ValueError):
    """The initial placement has objects inside each other; ``overlaps`` lists the pairs, deepest first."""

    def __init__(self, message: str, overlaps: Sequence[Overlap] = ()):
        super().__init__(message)
        self.overlaps = tuple(overlaps)

    def __reduce__(self):
        # Keeps the pairs when it crosses a process boundary (a dataset worker on Ray).
        return type(self), (str(self), self.overlaps)


ADVICE = (
    "the solver would throw them apart in the first frame with no velocity to show for it; "
    f"move them apart (up to {TOLERANCE_M * 1000:g} mm of overlap is allowed), "
    "or set `physics.resolve_overlaps: true` to separate them before the first frame"
)


def _length(metres: float) -> str:
    return f"{metres * 100:.1f} cm" if metres >= 0.01 else f"{metres * 1000:.1f} mm"


# ---------------------------------------------------------------- finding


def surface_allowances(scene: Scene, bodies: Sequence[Body]) -> np.ndarray:
    """(N,) metres each body's collision shape may reach past its drawn surface (see the module docstring)."""
    allowance = np.zeros(len(bodies))
    for body in bodies:
        if body.collision_source == "decomposition":
            longest = float(geometry.build_mesh(scene.objects[body.index].shape, scene.seed).extents.max())
            allowance[body.index] = PART_MARGIN_M + VHACD_REACH_CELLS * longest / VHACD_CELLS
    return allowance


def _candidate_pairs(client: int, bodies: Sequence[Body]) -> list[tuple[int, int]]:
    """Position pairs (i < j) in `bodies`, at least one dynamic, whose bounding boxes touch."""
    if len(bodies) < 2:
        return []
    boxes = np.array([np.concatenate(p.getAABB(b.body_id, -1, physicsClientId=client)) for b in bodies])
    lo, hi = boxes[:, :3], boxes[:, 3:]
    dynamic = np.array([b.kind == "dynamic" for b in bodies])
    later = np.arange(len(bodies))
    pairs: set[tuple[int, int]] = set()
    for i in np.flatnonzero(dynamic):
        # Every non-dynamic body, and the dynamic ones after i (earlier ones took this pair).
        others = np.flatnonzero((~dynamic | (later > i)) & (later != i))
        touching = np.all((lo[others] <= hi[i]) & (hi[others] >= lo[i]), axis=1)
        pairs.update((min(int(i), int(j)), max(int(i), int(j))) for j in others[touching])
    return sorted(pairs)


def find_overlaps(
    client: int,
    bodies: Sequence[Body],
    allowance_m: Optional[Sequence[float]] = None,
    tolerance_m: float = TOLERANCE_M,
) -> list[Overlap]:
    """Pairs of `bodies` (built in pybullet client `client`, in scene order) that the solver would push
    apart, interpenetrating by more than `tolerance_m` plus both bodies' `allowance_m` (default 0);
    deepest first, then in scene order."""
    allowance = np.zeros(len(bodies)) if allowance_m is None else np.asarray(allowance_m, dtype=np.float64)
    found = []
    for i, j in _candidate_pairs(client, bodies):
        a, b = bodies[i], bodies[j]
        points = p.getClosestPoints(a.body_id, b.body_id, 0.0, physicsClientId=client)
        if not points:
            continue
        # (flag, idA, idB, linkA, linkB, posOnA, posOnB, normalOnB, distance, ...)
        deepest = min(points, key=lambda c: c[8])
        depth = -float(deepest[8])
        excess = depth - allowance[i] - allowance[j]
        if excess <= tolerance_m:
            continue
        point = (np.asarray(deepest[5], dtype=np.float64) + np.asarray(deepest[6], dtype=np.float64)) / 2.0
        found.append(
            Overlap(
                index_a=a.index,
                index_b=b.index,
                name_a=a.name,
                name_b=b.name,
                depth_m=depth,
                excess_m=float(excess),
                point=tuple(float(c) for c in point),  # type: ignore[arg-type]
                # pybullet's normal points from B towards A: A moves along it to get out.
                normal=tuple(float(c) for c in deepest[7]),  # type: ignore[arg-type]
            )
        )
    found.sort(key=lambda o: (-o.depth_m, o.index_a, o.index_b))
    return found


def overlap_error(overlaps: Sequence[Overlap]) -> OverlapError:
    """An ``OverlapError`` whose message names every pair (up to ``MAX_REPORTED``) with depth and point."""
    lines = [o.describe() for o in overlaps[:MAX_REPORTED]]
    if len(overlaps) > MAX_REPORTED:
        lines.append(f"and {len(overlaps) - MAX_REPORTED} more overlapping pairs")
    return OverlapError("; ".join(lines) + f": {ADVICE}", overlaps)


def refuse_overlaps(client: int, scene: Scene, bodies: Sequence[Body]) -> None:
    """Raise ``OverlapError`` if any pair of `scene`'s `bodies` overlaps deeper than allowed."""
    overlaps = find_overlaps(client, bodies, surface_allowances(scene, bodies))
    if overlaps:
        raise overlap_error(overlaps)


# ---------------------------------------------------------------- the check at load time


def scene_overlaps(scene: Scene) -> list[Overlap]:
    """The overlaps of `scene`'s initial placement, from its bodies built in a throwaway pybullet client.

    Empty when the scene asks for ``physics.resolve_overlaps``. Raises
    ``BodyBuildError`` for an object that cannot be built (as ``World`` would).
    """
    if scene.physics.resolve_overlaps or not any(o.physics.body == "dynamic" for o in scene.objects):
        return []
    client = p.connect(p.DIRECT)
    if client < 0:
        raise PhysicsError("pybullet could not start a physics client (DIRECT mode)")
    try:
        bodies = [create_body(client, obj, i, scene.seed, scene.physics_dt) for i, obj in enumerate(scene.objects)]
        return find_overlaps(client, bodies, surface_allowances(scene, bodies))
    finally:
        p.disconnect(physicsClientId=client)


def check_initial_overlaps(scene: Scene) -> None:
    """Raise ``OverlapError`` if `scene`'s initial placement has objects inside each other
    (see the module docstring for which pairs count); nothing when ``physics.resolve_overlaps`` is set."""
    overlaps = scene_overlaps(scene)
    if overlaps:
        raise overlap_error(overlaps)


def overlap_issues(scene: Scene, source) -> list:
    """The overlaps of `scene` as located ``hybrid.scene.errors.Issue``s, one per pair at the
    later object of the two (``objects[j].position``), to report with the scene's other errors.

    `source` is the scene file's ``SourceMap``. An object that cannot be built gives no
    issue here: the file checks report it.
    """
    try:
        overlaps = scene_overlaps(scene)
    except BodyBuildError:
        return []
    issues = [
        source.issue(
            ("objects", o.index_b, "position"),
            f"{o.describe()} (objects[{o.index_a}] and objects[{o.index_b}]); {ADVICE}",
        )
        for o in sorted(overlaps[:MAX_REPORTED], key=lambda o: (o.index_b, o.index_a))
    ]
    if len(overlaps) > MAX_REPORTED:
        issues.append(source.issue(("objects",), f"and {len(overlaps) - MAX_REPORTED} more overlapping pairs"))
    return issues


# ---------------------------------------------------------------- separating


def separate_overlaps(client: int, scene: Scene, bodies: Sequence[Body]) -> int:
    """Move `scene`'s dynamic `bodies` out of each other and out of static and kinematic ones;
    return the rounds used (0: nothing overlapped).

    Each round pushes every overlapping pair apart along its contact normal by its depth
    beyond the pair's allowances, shared in inverse proportion to mass (a static or
    kinematic body does not move). Bodies only translate: orientations and velocities
    stay as the scene gave them, so the separation adds no motion of its own. Raises
    ``OverlapError`` naming the pairs still overlapping after ``MAX_SEPARATION_ROUNDS``.
    """
    allowance = surface_allowances(scene, bodies)
    for rounds in range(MAX_SEPARATION_ROUNDS):
        overlaps = find_overlaps(client, bodies, allowance, SEPARATION_GOAL_M)
        if not overlaps:
            return rounds
        for o in overlaps:
            a, b = bodies[o.index_a], bodies[o.index_b]
            inv_a = 1.0 / a.mass_kg if a.kind == "dynamic" else 0.0
            inv_b = 1.0 / b.mass_kg if b.kind == "dynamic" else 0.0
            push = o.excess_m * np.asarray(o.normal, dtype=np.float64) / (inv_a + inv_b)
            if inv_a:
                _translate(client, a, inv_a * push)
            if inv_b:
                _translate(client, b, -inv_b * push)
    remaining = find_overlaps(client, bodies, allowance)
    if remaining:
        raise OverlapError(
            "physics.resolve_overlaps could not separate "
            + "; ".join(o.describe() for o in remaining[:MAX_REPORTED])
            + f" in {MAX_SEPARATION_ROUNDS} rounds: they are probably wedged between other objects; "
            "move them apart in the scene",
            remaining,
        )
    return MAX_SEPARATION_ROUNDS


def _translate(client: int, body: Body, offset: np.ndarray) -> None:
    position, quat = p.getBasePositionAndOrientation(body.body_id, physicsClientId=client)
    linear, angular = p.getBaseVelocity(body.body_id, physicsClientId=client)
    moved = (np.asarray(position, dtype=np.float64) + offset).tolist()
    p.resetBasePositionAndOrientation(body.body_id, moved, quat, physicsClientId=client)
    # The scene's initial velocity stays, whatever the reset does to it.
    p.resetBaseVelocity(body.body_id, linear, angular, physicsClientId=client)
