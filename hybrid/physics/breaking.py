"""The switch from an intact body to its fragments: velocities that conserve momentum, and the new bodies.

When a breakable body breaks, every fragment carries on the parent's rigid motion at
its own centre of mass, v_i = v + omega x r_i (r_i from the parent's centre of mass
to the fragment's), and spins with the parent's omega. The fragments tile the parent
(``hybrid.physics.fracture``), so their masses and first moments sum to the parent's
and their inertias, moved to the parent's centre by parallel axes, sum to its
inertia: linear momentum M v and angular momentum I omega come through the switch
unchanged, to rounding.

An optional outward kick of energy E (a documented share of the impact's energy,
chosen by the material) adds to each fragment a velocity along the direction from the
kick's origin (the point of impact) to its centre, made free of momentum and angular
momentum first: the mass-weighted mean is taken out, then the rigid rotation J^-1 L
(J the fragments' point-mass inertia about the centre of mass, L the kick's angular
momentum), and what remains is scaled to kinetic energy E. The rigid motion and the
kick are orthogonal in the kinetic-energy inner product (sum m_i (v + omega x r_i) .
u_i = v . sum m_i u_i + omega . sum m_i r_i x u_i = 0), so the fragments' kinetic
energy is the parent's plus exactly E.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from hybrid.physics.pybullet_quiet import pybullet as p

from hybrid.physics.fracture import Fragment
from hybrid.physics.mass import principal_axes
from hybrid.transforms import quat_multiply, quat_to_matrix


@dataclass(frozen=True)
class FragmentMotion:
    """Per fragment (rows in fragment order): centre-of-mass velocity (n, 3) m/s and angular velocity (n, 3) rad/s."""

    linear: np.ndarray
    angular: np.ndarray


def fragment_motion(
    masses: np.ndarray,
    centres: np.ndarray,
    parent_com: np.ndarray,
    linear: np.ndarray,
    angular: np.ndarray,
    kick_energy: float = 0.0,
    kick_origin: Optional[np.ndarray] = None,
    *,
    inertias: Optional[np.ndarray] = None,
    parent_inertia: Optional[np.ndarray] = None,
) -> FragmentMotion:
    """Velocities of fragments of masses `masses` (n,) centred at `centres` (n, 3), world frame,
    when a body whose centre of mass `parent_com` moves at `linear` and spins at `angular`
    breaks, plus an outward kick of `kick_energy` joules from `kick_origin` (default the
    centre of mass); see the module docstring.

    With `inertias` (n, 3, 3: each fragment's about its centre, world axes) and
    `parent_inertia` (3, 3: the parent's about its centre of mass), fragments that do not
    tile the parent exactly (a ball primitive broken as its drawn polyhedron, whose
    centre and inertia differ from the ball's by a fraction of a percent) still carry
    exactly its momentum and its angular momentum about ``parent_com``: they move as
    one rigid body about their own centre of mass, at the parent's velocity, with the
    spin omega' = J^-1 (I omega - (c - parent_com) x M v) (J their inertia about their
    centre c). For an exact tiling omega' = omega.
    """
    m = np.asarray(masses, dtype=np.float64)
    c0 = np.asarray(parent_com, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    v = np.asarray(linear, dtype=np.float64)
    w = np.asarray(angular, dtype=np.float64)
    if kick_energy < 0 or not np.isfinite(kick_energy):
        raise ValueError(f"the kick's energy must be a finite number of joules >= 0, got {kick_energy!r}")
    base = c0  # the point the fragments' rigid motion is about
    if inertias is not None and parent_inertia is not None:
        base = (m[:, None] * centres).sum(axis=0) / m.sum()
        J = np.asarray(inertias, dtype=np.float64).sum(axis=0) + _point_inertia(m, centres - base)
        w = np.linalg.solve(J, np.asarray(parent_inertia, dtype=np.float64) @ w - np.cross(base - c0, m.sum() * v))
    r = centres - base
    rigid = v + np.cross(w, r)
    spin = np.broadcast_to(w, r.shape).copy()
    if kick_energy == 0.0 or len(m) < 2:
        return FragmentMotion(rigid, spin)
    origin = np.zeros(3) if kick_origin is None else np.asarray(kick_origin, dtype=np.float64) - base
    u = r - origin
    length = np.linalg.norm(u, axis=1, keepdims=True)
    u = np.divide(u, length, out=np.zeros_like(u), where=length > 0)
    u -= (m[:, None] * u).sum(axis=0) / m.sum()  # no net momentum
    L = (m[:, None] * np.cross(r, u)).sum(axis=0)
    u -= np.cross(np.linalg.lstsq(_point_inertia(m, r), L, rcond=None)[0], r)  # no net angular momentum
    energy = 0.5 * float((m * (u * u).sum(axis=1)).sum())
    if energy <= 0.0:
        return FragmentMotion(rigid, spin)
    return FragmentMotion(rigid + u * np.sqrt(kick_energy / energy), spin)


def _point_inertia(m: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(3, 3) inertia of point masses `m` at `r` about the origin."""
    return (m[:, None, None] * ((r * r).sum(axis=1)[:, None, None] * np.eye(3) - r[:, :, None] * r[:, None, :])).sum(axis=0)


@dataclass(frozen=True)
class FragmentBody:
    """A fragment as a pybullet body: its id, mass, and pose of its inertial frame in the parent's
    object frame (``centre``: the fragment's centroid; ``principal_quat``: its principal axes)."""

    body_id: int
    mass_kg: float
    centre: np.ndarray
    principal_quat: tuple[float, float, float, float]
    moments: np.ndarray


# pybullet pads each convex part of a compound (an OBJ with one `o` group per part) with
# this collision margin and offers no way to remove it, so the parts are shrunk by it
# first: padded again, they fill the piece's own volume (edges rounded by 1 mm).
COMPOUND_MARGIN = 1e-3


def shrink_hull(points: np.ndarray, margin: float) -> Optional[np.ndarray]:
    """Vertices of the convex hull of `points` with every face moved `margin` inwards; None
    when the hull is too thin for that (its centroid within 1.5 margins of a face)."""
    from scipy.spatial import ConvexHull, HalfspaceIntersection

    hull = ConvexHull(points)
    normals, offsets = hull.equations[:, :3], -hull.equations[:, 3]
    centre = points[hull.vertices].mean(axis=0)
    if (offsets - normals @ centre).min() <= 1.5 * margin:
        return None
    halfspaces = np.hstack([normals, -(offsets - margin)[:, None]])  # scipy: A x + b <= 0
    return HalfspaceIntersection(halfspaces, centre).intersections


def compound_file(hulls: Sequence[np.ndarray]):
    """The hulls as an OBJ of one `o` group each (each group's faces its hull), in the cache folder by content hash."""
    from scipy.spatial import ConvexHull

    from hybrid.cache import cache_root, content_file

    lines, base = [], 1
    for k, points in enumerate(hulls):
        hull = ConvexHull(points)
        lines.append(f"o piece{k}")
        lines.extend(f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in points)
        lines.extend(f"f {a + base} {b + base} {c + base}" for a, b, c in hull.simplices)
        base += len(points)
    data = ("\n".join(lines) + "\n").encode()
    return content_file(cache_root() / "fragments", ".obj", data)


def spawn_fragments(
    client: int,
    fragments: Sequence[Fragment],
    masses: np.ndarray,
    position: np.ndarray,
    quaternion: Sequence[float],
    motion: FragmentMotion,
) -> list[FragmentBody]:
    """Create one dynamic body per fragment in pybullet client `client` where the parent, whose
    object frame is at `position` / `quaternion` (x, y, z, w), was; each with mass `masses[i]`,
    its exact principal inertia (the fragment's solid, scaled to that mass), and `motion`'s
    velocities. A fragment of one convex piece collides as that hull with no collision
    margin (it rests on its drawn surface, as hull bodies do: ``bodies.py``); a fragment
    spanning several parts of a decomposition is a compound of its pieces, each shrunk by
    pybullet's margin (``COMPOUND_MARGIN``); a piece less than about 3 margins thick is
    left out of the collision shape (it keeps its mass and is drawn)."""
    R = quat_to_matrix(np.asarray(quaternion, dtype=np.float64))
    out = []
    for i, fragment in enumerate(fragments):
        mass = float(masses[i])
        inertia = fragment.inertia(mass / fragment.volume)
        moments, principal = principal_axes(inertia)
        to_principal = quat_to_matrix(np.asarray(principal)).T
        hulls = [((piece.vertices - fragment.centroid) @ to_principal.T).tolist() for piece in fragment.pieces]
        if len(hulls) == 1:
            shape = p.createCollisionShape(p.GEOM_MESH, vertices=hulls[0], physicsClientId=client)
        else:
            shrunk = [shrink_hull(np.asarray(h), COMPOUND_MARGIN) for h in hulls]
            # A sliver too thin to shrink would stand a margin into its neighbour: it is
            # left out of the collision shape (never all pieces: the thickest stays).
            kept = [h for h in shrunk if h is not None] or [np.asarray(hulls[int(np.argmax([q.volume for q in fragment.pieces]))])]
            path = compound_file(kept)
            shape = p.createCollisionShape(p.GEOM_MESH, fileName=str(path), physicsClientId=client)
        world_centre = np.asarray(position, dtype=np.float64) + R @ fragment.centroid
        body = p.createMultiBody(
            baseMass=mass,
            baseCollisionShapeIndex=shape,
            baseVisualShapeIndex=-1,
            basePosition=world_centre.tolist(),
            baseOrientation=list(quat_multiply(np.asarray(quaternion, dtype=np.float64), np.asarray(principal))),
            useMaximalCoordinates=True,
            physicsClientId=client,
        )
        if len(hulls) == 1:
            p.changeDynamics(body, -1, collisionMargin=0.0, physicsClientId=client)
        p.changeDynamics(
            body, -1, mass=mass, localInertiaDiagonal=moments.tolist(),
            activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING, physicsClientId=client,
        )
        p.resetBaseVelocity(body, motion.linear[i].tolist(), motion.angular[i].tolist(), physicsClientId=client)
        out.append(FragmentBody(body, mass, fragment.centroid.copy(), principal, moments))
    return out
