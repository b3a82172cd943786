"""Breakable objects in a World: when they break, and what they break into.

Threshold. A breakable object (``physics.breakable``) breaks in the first physics
step at which the total normal contact impulse on it, summed over all its contact
points and over the last ``BREAK_WINDOW_S`` (10 ms, whole steps), reaches
``threshold_Ns`` (newton-seconds). Bullet resolves an impact within a step or a few
(a ball in the step it lands; a box landing flat over the steps its corners come
into contact), so an impact counts in full: a body of mass m striking a resting
surface at speed v with restitution e takes J = m v (1 + e), and a dropped object
breaks from the height h* = (threshold / (m (1 + e)))^2 / (2 g) up (tested against
that formula). A steady load F counts as F x 10 ms, so threshold / 10 ms is also the
steady force the object bears (glass's 0.3 N s: 30 N). A static breakable (a window
pane) feels the impulse of whatever hits it. The impact point is the impulse-weighted
mean of the contact points, over the same window, of the body that pushed hardest
(``Breaker._impact_point``).

What an object cannot bear it does not pass on: in the step it breaks, the share of
that step's normal contact impulse beyond the threshold is taken back from both
sides (``Breaker._take_back``: the other moving bodies get it back as velocity and
spin, the parent's motion is reduced by it), so a ball thrown through a window pane
flies on at v - threshold / m instead of bouncing off as if the pane held, and a
glass dropped on a floor shatters without bouncing up as a whole (tested).

The switch, in that same step: the parent's fragments (``fracture``: Voronoi cells
clipped to its convex parts, with the impact point as the ``impact`` pattern's
centre) replace it, each a dynamic body with its share of the parent's mass (by
volume, so the masses sum to the parent's), its own exact inertia, and the parent's
rigid motion at its centre plus a momentum-free outward kick whose energy is
``kick`` times the impact's energy J^2 / (2 m) (``breaking.fragment_motion``). A
static parent has the mass its density gives (``mass.body_mass``) and no motion.
Fragments take the parent's friction, restitution and damping. In a scene with smoke
or fire the gas meets the fragments (each as its convex hull) from the next step on
(``FieldSystem.break_body``); scenes with a liquid refuse breakables.

Geometry. Everything happens in the root object's frame: its convex parts
(``object_parts``), the fracture, and every fragment's "shape frame", which is the
parent's object frame at the break (``hybrid.roster``). A fragment that breaks
again (``rebreak``) is cut from its own pieces in the same frame. ``event_fragments``
rebuilds any break's fragments from the plain ``BreakEvent`` (renderers use it): the
fracture cache makes that a file read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from hybrid.physics.fracture import Fragment, FracturePattern, cached_fracture
from hybrid.roster import BreakEvent, Roster

if TYPE_CHECKING:
    from hybrid.scene.spec import ObjectSpec, Scene

# The stretch of time over which contact impulse adds up towards a breakable's threshold.
BREAK_WINDOW_S = 0.01


@dataclass(frozen=True)
class BreakSettings:
    """A breakable's resolved settings (``Breakable.resolved``): every key filled."""

    threshold_Ns: float
    pieces: int
    pattern: str
    seed: int
    kick: float
    grain_stretch: float
    rebreak: bool

    @staticmethod
    def of(obj: "ObjectSpec") -> "BreakSettings":
        s = obj.physics.break_spec().resolved()  # type: ignore[union-attr]
        return BreakSettings(
            threshold_Ns=float(s["threshold_Ns"]),
            pieces=int(s["pieces"]),
            pattern=str(s["pattern"]),
            seed=int(s["seed"]),
            kick=float(s["kick"]),
            grain_stretch=float(s["grain_stretch"]),
            rebreak=bool(s["rebreak"]),
        )


def object_parts(obj: "ObjectSpec", seed: int) -> list[np.ndarray]:
    """The convex parts (point sets, the object's shape frame) a breakable object is cut from.

    A shape's own exact partition when it has one (``lathe``: glasses, bowls, vases);
    the drawn mesh's vertices when the mesh is convex (boxes, balls, cylinders, convex
    meshes: a primitive that collides analytically, like a ball, breaks as its drawn
    polyhedron); the parts of its convex decomposition (``decomposition.decompose``)
    when it is not (approximate: V-HACD's hulls may overlap or overfill a thin wall).
    """
    from hybrid import geometry
    from hybrid.physics import decomposition

    own = getattr(obj.shape, "convex_parts", None)
    if own is not None:
        return [np.asarray(p, dtype=np.float64) for p in own(seed)]
    import trimesh

    mesh = geometry.build_mesh(obj.shape, seed)
    # Drawn meshes repeat a vertex per face or per seam (flat normals, UVs): merged, they close.
    solid = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=True)
    if decomposition.is_convex(solid):
        return [np.asarray(solid.vertices, dtype=np.float64)]
    return decomposition.part_points(decomposition.decompose(mesh))


def grain_axis(parts: Sequence[np.ndarray]) -> tuple[float, float, float]:
    """The object's longest bounding-box axis (a unit axis of its frame): where wood's grain runs."""
    lo = np.min([p.min(axis=0) for p in parts], axis=0)
    hi = np.max([p.max(axis=0) for p in parts], axis=0)
    axis = np.zeros(3)
    axis[int(np.argmax(hi - lo))] = 1.0
    return tuple(float(c) for c in axis)  # type: ignore[return-value]


def break_pattern(settings: BreakSettings, pieces: int, seed: int, parts: Sequence[np.ndarray], impact_local) -> FracturePattern:
    """The fracture pattern of one break: `pieces` cells from `seed`, centred on the impact for ``impact``."""
    grain = grain_axis(parts) if settings.grain_stretch > 1.0 else None
    return FracturePattern(
        pieces=pieces,
        seed=seed,
        kind=settings.pattern,  # type: ignore[arg-type]
        impact=tuple(float(c) for c in impact_local) if settings.pattern == "impact" else None,  # type: ignore[arg-type]
        grain=grain,
        grain_stretch=settings.grain_stretch,
    )


def entry_seed(settings: BreakSettings, roster: Roster, index: int) -> int:
    """The fracture seed of roster entry `index`: the object's seed, offset by the slot for fragments."""
    return settings.seed if roster.parent[index] < 0 else settings.seed + 7919 * (index + 1)


@lru_cache(maxsize=64)
def _object_parts_cached(obj: "ObjectSpec", seed: int) -> tuple[np.ndarray, ...]:
    return tuple(object_parts(obj, seed))


def entry_parts(scene: "Scene", roster: Roster, breaks: Sequence[BreakEvent], index: int) -> list[np.ndarray]:
    """The convex parts of roster entry `index` in its root object's frame: the object's own
    (``object_parts``) or, for a fragment, the pieces its break made it of."""
    if roster.parent[index] < 0:
        return list(_object_parts_cached(scene.objects[index], scene.seed))
    for event in breaks:
        if index in event.fragments:
            fragment = event_fragments(scene, roster, breaks, event)[event.fragments.index(index)]
            return [piece.vertices for piece in fragment.pieces]
    raise ValueError(f"{roster.names[index]!r} has not been made by any break yet")


def event_fragments(scene: "Scene", roster: Roster, breaks: Sequence[BreakEvent], event: BreakEvent) -> list[Fragment]:
    """The fragments of one break (in slot order: fragment k fills ``event.fragments[k]``), from the
    fracture cache: the same bytes the World spawned.

    A fragment that broke again is cut from its own pieces, whose faces on the first
    break's cuts are broken faces too: they stay marked inner here.
    """
    fragments = cached_fracture(entry_parts(scene, roster, breaks, event.parent), event.pattern)
    if roster.parent[event.parent] < 0:
        return fragments
    made = next(e for e in breaks if event.parent in e.fragments)
    own = event_fragments(scene, roster, breaks, made)[made.fragments.index(event.parent)]
    planes = []
    for piece in own.pieces:
        tri = piece.vertices[piece.faces[piece.inner]]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        planes.append(np.hstack([n, -(n * tri[:, 0]).sum(axis=1, keepdims=True)]))
    planes = np.concatenate(planes) if planes else np.zeros((0, 4))
    size = float(np.ptp(np.concatenate([p.vertices for p in own.pieces]), axis=0).max())
    return [_mark_inner(f, planes, 1e-9 * size) for f in fragments]


def _mark_inner(fragment: Fragment, planes: np.ndarray, tol: float) -> Fragment:
    """`fragment` with every face whose corners all lie on one of `planes` (n, d: n.x + d = 0) marked inner."""
    from dataclasses import replace

    pieces = []
    for piece in fragment.pieces:
        tri = piece.vertices[piece.faces]  # (F, 3, 3)
        dist = np.abs(np.einsum("fkj,pj->fkp", tri, planes[:, :3]) + planes[:, 3])  # (F, 3, P)
        on = (dist <= tol).all(axis=1).any(axis=1) if len(planes) else np.zeros(len(tri), dtype=bool)
        pieces.append(replace(piece, inner=piece.inner | on))
    return Fragment(site=fragment.site, pieces=tuple(pieces))


def fragment_masses(total_kg: float, fragments: Sequence[Fragment]) -> np.ndarray:
    """Each fragment's share of `total_kg` by volume; the shares sum to `total_kg` (the last takes the rounding)."""
    volumes = np.array([f.volume for f in fragments], dtype=np.float64)
    masses = total_kg * volumes / volumes.sum()
    masses[-1] = total_kg - masses[:-1].sum()
    return masses


def root_settings(scene: "Scene", roster: Roster, index: int) -> Optional[BreakSettings]:
    """The break settings that govern roster entry `index`: its object's for the object, the same
    (with fewer pieces) for a fragment that may break again; None when it cannot break."""
    if roster.pieces[index] == 0:
        return None
    return BreakSettings.of(scene.objects[roster.root[index]])


class Breaker:
    """The World's watch over its breakable bodies: checks each step's contact impulse on every
    intact breakable and makes the switch in that step (see the module docstring).

    It works on the World's own tables (``World._present``, ``_body_id``, ...), which it
    updates at every break.
    """

    def __init__(self, world) -> None:
        from hybrid.physics.mass import body_mass

        self.world = world
        scene, roster = world.scene, world.roster
        self.impulse_per_force = scene.physics_dt * scene.physics.substeps
        self.mass = np.zeros(len(roster))
        self.moments = np.zeros((len(roster), 3))
        for body in world.bodies:
            obj = scene.objects[body.index]
            if roster.pieces[body.index]:
                self.mass[body.index] = body.mass_kg if body.kind == "dynamic" else body_mass(obj)
                self.moments[body.index] = body.moments  # zeros for a static parent: it never moves
        self.settings = {i: BreakSettings.of(scene.objects[i]) for i in range(roster.scene_objects) if roster.pieces[i]}
        self.armed = [i for i in range(roster.scene_objects) if roster.pieces[i]]
        # Per armed entry, the last `window` steps' impulse and impulse-weighted contact point.
        self.window = max(1, int(np.ceil(BREAK_WINDOW_S / scene.physics_dt - 1e-9)))
        self.recent: dict[int, list] = {i: [{} for _ in range(self.window)] for i in self.armed}
        self.static_ids = {b.body_id for b in world.bodies if b.kind == "static"}

    def after_step(self, client: int, step: int, frame: int) -> None:
        """Break every intact breakable whose contact impulse over the last window reached its threshold."""
        from hybrid.physics.pybullet_quiet import pybullet as p

        world = self.world
        ring = step % self.window
        breaking = []
        for index in list(self.armed):
            body_id = int(world._body_id[index])
            recent = self.recent[index]
            points = p.getContactPoints(bodyA=body_id, physicsClientId=client)
            recent[ring] = {}
            for pt in points:
                force = pt[9]
                if not force > 0.0:
                    continue
                mine, other = (pt[5], pt[2]) if pt[1] == body_id else (pt[6], pt[1])
                entry = recent[ring].setdefault(other, [0.0, 0.0, 0.0, 0.0])
                entry[0] += force * self.impulse_per_force
                for k in range(3):
                    entry[1 + k] += force * self.impulse_per_force * mine[k]
            if not recent[ring]:
                continue  # nothing new pushed on it: it was checked when the impulse came
            step_impulse = float(sum(v[0] for v in recent[ring].values()))
            pairs: dict[int, np.ndarray] = {}
            for stepped in recent:
                for other, entry in stepped.items():
                    pairs[other] = pairs.get(other, np.zeros(4)) + entry
            impulse = float(sum(v[0] for v in pairs.values()))
            settings = self.settings[world.roster.root[index]]
            if impulse < settings.threshold_Ns:
                continue
            # What the object could not bear it does not pass on: of this step's contact impulse, the
            # share beyond the threshold is taken back from both sides (_take_back).
            share = min(1.0, (impulse - settings.threshold_Ns) / step_impulse) if step_impulse > 0 else 0.0
            breaking.append((index, self._impact_point(pairs), impulse, settings, points, share))
        # All decided on this step's contacts first, then switched in roster order; a body removed
        # by an earlier switch in this step (whose id pybullet may already have handed to a
        # fragment) is left out of a later one's take-back.
        gone: set[int] = set()
        for index, impact, impulse, settings, points, share in breaking:
            points = [pt for pt in points if pt[1] not in gone and pt[2] not in gone]
            gone.add(int(world._body_id[index]))
            made = self._break(client, index, step, frame, impact, impulse, settings, points, share)
            gone.update(made)

    def collapse(self, client: int, index: int, step: int, frame: int, mass_kg: float) -> None:
        """A consumed flammable object (``hybrid.fields.burning``) collapses into its char fragments before
        physics step `step`: no blow, no kick; the fragments share the `mass_kg` it has left and carry
        on its motion."""
        from hybrid.physics.pybullet_quiet import pybullet as p

        if index not in self.armed:
            return
        if self.mass[index] > 0.0:
            self.moments[index] *= mass_kg / self.mass[index]
        self.mass[index] = mass_kg
        body_id = int(self.world._body_id[index])
        com = np.asarray(p.getBasePositionAndOrientation(body_id, physicsClientId=client)[0], dtype=np.float64)
        self._break(client, index, step, frame, com, 0.0, self.settings[index])

    def _impact_point(self, pairs: dict) -> np.ndarray:
        """Where the blow landed: the impulse-weighted mean contact point of the body that pushed hardest
        in the window. A static body's push counts a quarter less here, so a ball striking a glass on a
        table is the blow, not the table's push back on the glass's foot (about as large); a glass
        dropped on a floor has only the floor."""
        static = self.static_ids
        best = max(pairs, key=lambda other: (pairs[other][0] * (0.75 if other in static else 1.0), -other))
        entry = pairs[best]
        return entry[1:] / entry[0]

    def _take_back(self, client: int, body_id: int, points, share: float) -> tuple[np.ndarray, np.ndarray]:
        """Undo `share` of the normal contact impulse of this step's `points` on body `body_id`: the other
        moving bodies get their share back now (velocity and spin); returns (the impulse to take from
        the breaking body, the world point it acted at, impulse-weighted) for ``_break``."""
        from hybrid.physics.pybullet_quiet import pybullet as p
        from hybrid.transforms import quat_to_matrix

        total, moment = np.zeros(3), np.zeros(3)
        if share <= 0.0:
            return total, moment
        per_other: dict[int, list] = {}
        for pt in points:
            force = pt[9]
            if not force > 0.0:
                continue
            normal = np.asarray(pt[7], dtype=np.float64)  # on B, pointing from B to A
            if pt[1] == body_id:  # the breaking body is A: pushed along +normal
                other, at_other, on_self = pt[2], pt[6], normal
            else:
                other, at_other, on_self = pt[1], pt[5], -normal
            j = share * force * self.impulse_per_force
            total += j * on_self  # the impulse it had, to be taken back
            moment += j * np.cross(np.asarray(pt[5] if pt[1] == body_id else pt[6]), on_self)
            per_other.setdefault(other, []).append((np.asarray(at_other, dtype=np.float64), -j * on_self))
        for other, pushes in per_other.items():
            info = p.getDynamicsInfo(other, -1, physicsClientId=client)
            mass, local = info[0], np.asarray(info[2], dtype=np.float64)
            if not mass > 0.0:
                continue  # static or kinematic: its motion is not ours to change
            com, quat = p.getBasePositionAndOrientation(other, physicsClientId=client)
            linear, angular = p.getBaseVelocity(other, physicsClientId=client)
            R = quat_to_matrix(np.asarray(quat, dtype=np.float64))  # pybullet's base frame: principal axes
            dp = -sum(push for _, push in pushes)  # it gets back what it gave
            dL = -sum(np.cross(at - np.asarray(com), push) for at, push in pushes)
            inv_inertia = R @ np.diag(np.where(local > 0, 1.0 / np.where(local > 0, local, 1.0), 0.0)) @ R.T
            p.resetBaseVelocity(
                other,
                (np.asarray(linear) + dp / mass).tolist(),
                (np.asarray(angular) + inv_inertia @ dL).tolist(),
                physicsClientId=client,
            )
        return total, moment

    def _break(self, client: int, index: int, step: int, frame: int, impact: np.ndarray, impulse: float,
               settings: BreakSettings, points=(), share: float = 0.0) -> list[int]:
        from hybrid.physics.bodies import apply_material
        from hybrid.physics.breaking import fragment_motion, spawn_fragments
        from hybrid.physics.pybullet_quiet import pybullet as p
        from hybrid.transforms import quat_conjugate, quat_multiply, quat_to_matrix

        world, roster, scene = self.world, self.world.roster, self.world.scene
        body_id = int(world._body_id[index])
        com, com_quat = p.getBasePositionAndOrientation(body_id, physicsClientId=client)
        linear, angular = p.getBaseVelocity(body_id, physicsClientId=client)
        com, com_quat = np.asarray(com, dtype=np.float64), np.asarray(com_quat, dtype=np.float64)
        linear, angular = np.asarray(linear, dtype=np.float64), np.asarray(angular, dtype=np.float64)
        shape_quat = quat_multiply(com_quat, quat_conjugate(world._inertial_quat[index]))
        shape_quat /= np.linalg.norm(shape_quat)
        R = quat_to_matrix(shape_quat)
        origin = com - R @ world._com_local[index]
        mass = float(self.mass[index])
        R_com = quat_to_matrix(com_quat)
        if share > 0.0 and mass > 0.0 and any(self.moments[index]):
            taken, moment = self._take_back(client, body_id, points, share)
            linear = linear - taken / mass
            inv = R_com @ np.diag(1.0 / self.moments[index]) @ R_com.T
            angular = angular - inv @ (moment - np.cross(com, taken))
        elif share > 0.0:
            self._take_back(client, body_id, points, share)  # a static parent: only the others move back
        momentum = mass * linear
        angular_momentum = R_com @ (self.moments[index] * (R_com.T @ angular))

        parts = entry_parts(scene, roster, world._breaks, index)
        impact_local = R.T @ (impact - origin)
        seed = entry_seed(settings, roster, index)
        pattern = break_pattern(settings, roster.pieces[index], seed, parts, impact_local)
        fragments = cached_fracture(parts, pattern)
        masses = fragment_masses(mass, fragments)
        centres = origin + np.array([f.centroid for f in fragments]) @ R.T
        kick_J = settings.kick * impulse * impulse / (2.0 * mass)
        density = masses / np.array([f.volume for f in fragments])
        inertias = np.array([R @ f.inertia(d) @ R.T for f, d in zip(fragments, density)])
        parent_inertia = R_com @ np.diag(self.moments[index]) @ R_com.T
        motion = fragment_motion(
            masses, centres, com, linear, angular, kick_J, impact, inertias=inertias, parent_inertia=parent_inertia
        )
        spawned = spawn_fragments(client, fragments, masses, origin, tuple(shape_quat), motion)

        # The parent's row stays at the break; it leaves the world.
        row = world.read_bodies()
        self._freeze(index, row)
        p.removeBody(body_id, physicsClientId=client)
        self.static_ids.discard(body_id)  # pybullet hands its id to the next new body
        world._present[index] = False
        world._body_id[index] = -1
        self.armed.remove(index)
        del self.recent[index]
        slots = roster.slots[index]
        root_obj = scene.objects[roster.root[index]]
        world._scaled_gravity = [(b, f) for b, f in world._scaled_gravity if b != body_id]
        bind = {}
        for slot, body in zip(slots, spawned):
            apply_material(client, body.body_id, root_obj.physics)
            world._present[slot] = True
            world._body_id[slot] = body.body_id
            world._com_local[slot] = body.centre
            world._inertial_quat[slot] = body.principal_quat
            world._has_offset[slot] = True
            self.mass[slot] = body.mass_kg
            self.moments[slot] = body.moments
            bind[body.body_id] = slot
            if roster.pieces[slot]:
                self.armed.append(slot)
                self.recent[slot] = [{} for _ in range(self.window)]
            if root_obj.physics.gravity_scale != 1.0:
                force = (world._gravity * body.mass_kg * (root_obj.physics.gravity_scale - 1.0)).tolist()
                world._scaled_gravity.append((body.body_id, force))
        world._contacts.rebind([body_id], bind)
        world._refresh_live()
        if world.fields is not None:  # the fluids meet the fragments from the next step on
            world.fields.break_body(
                index, slots[: len(spawned)], [b.body_id for b in spawned],
                [np.concatenate([piece.vertices for piece in f.pieces]) for f in fragments],
            )
        event = BreakEvent(
            parent=index,
            fragments=tuple(slots[: len(fragments)]),
            step=step - 1,
            time_s=step * scene.physics_dt,
            frame=frame,
            impact_point=tuple(float(c) for c in impact),  # type: ignore[arg-type]
            impact_local=tuple(float(c) for c in impact_local),  # type: ignore[arg-type]
            impulse_Ns=impulse,
            centre_of_mass=tuple(float(c) for c in com),  # type: ignore[arg-type]
            momentum=tuple(float(c) for c in momentum),  # type: ignore[arg-type]
            angular_momentum=tuple(float(c) for c in angular_momentum),  # type: ignore[arg-type]
            kick_J=float(kick_J),
            pattern=pattern,
        )
        world._breaks = world._breaks + (event,)
        return [body.body_id for body in spawned]

    def _freeze(self, index: int, rows) -> None:
        self.world._frozen[index] = tuple(np.array(r[index]) for r in rows)


def carried_by(scene: "Scene", roster: Roster, breaks: Sequence[BreakEvent], index: int, points: np.ndarray,
               frame: int) -> np.ndarray:
    """int64 (N,): the roster entry that holds each point (N, 3) of entry `index`'s material (its root
    object's frame) at the end of video frame `frame`, following every break up to that frame: the
    fragment whose cell holds the point (``fracture.fragment_of``), and that fragment's fragment if it
    broke too. Optical flow carries a point with the entry's motion (``hybrid.render.flow``)."""
    from hybrid.physics.fracture import fragment_of

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.full(len(points), index, dtype=np.int64)
    pending = [(index, np.arange(len(points)))]
    while pending:
        entry, rows = pending.pop()
        event = next((e for e in breaks if e.parent == entry and e.frame <= frame), None)
        if event is None:
            out[rows] = entry
            continue
        fragments = event_fragments(scene, roster, breaks, event)
        sites = np.array([f.site for f in fragments])
        which = fragment_of(points[rows], sites, event.pattern)
        for k in np.unique(which).tolist():
            pending.append((event.fragments[k], rows[which == k]))
    return out
