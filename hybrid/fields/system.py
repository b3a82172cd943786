"""The fields of one World, stepped in lockstep with its rigid bodies and coupled both ways.

``FieldSystem`` owns the Taichi side of a World: the colliders (every scene object as
a moving signed-distance boundary), a ``GasSolver`` and/or a ``LiquidSolver``.
``World.step`` calls ``before_step`` ahead of every pybullet step:

1. every body's pose, velocity and centre of mass is read from pybullet into the
   colliders (shape-frame poses, as in ``State``);
2. at the first step of a frame the gas advances one whole frame (CFL substeps
   inside; gas moves slowly next to the 1/240 s rigid step, so one gas advance per
   frame is enough), its pressure impulses on the bodies become a force held over
   the frame's steps;
3. the liquid advances one physics step (its CFL substeps are far shorter than a
   physics step), and its boundary impulses become a force over that step;
4. under two-way coupling the summed force and torque act on each dynamic body
   during the coming pybullet step (pybullet clears external forces after a step).

Flammable objects (``hybrid.fields.burning``) burn once per frame, just before the
gas advances: they read its temperature (and where the liquid is: it puts them out),
give it their fuel vapour for the frame and their bodies get their new mass.

The coupling is explicit (partitioned): fluids see the bodies' state at the start of
the interval, bodies feel the fluids' impulse of that interval. ``frame()`` gives the
plain ``FieldFrame`` snapshot that ``State.fields`` carries to the renderer.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from hybrid.fields import backend
from hybrid.fields.frames import FieldFrame, FieldStats
from hybrid.physics.pybullet_quiet import pybullet as p
from hybrid.scene.spec import Scene

# Face planes a fragment's collider may have (a Voronoi cell of a box has about 15; more
# keeps the largest, a slightly larger solid).
FRAGMENT_PLANES = 48


class FieldSystem:
    """Gas and liquid solvers plus the colliders for one World (see the module docstring)."""

    def __init__(self, scene: Scene, client: int, bodies: Sequence, read_bodies: Callable, log=None):
        """`bodies`: the World's ``Body`` records; `read_bodies()`: the World's reader of every
        body's shape-frame pose, velocities and centre of mass (``World.read_bodies``)."""
        fields = scene.fields
        if fields is None:
            raise ValueError("FieldSystem needs a scene with a `fields:` section")
        self.scene = scene
        self.spec = fields
        self._client = client
        self._read_bodies = read_bodies
        self.backend = backend.ensure(fields.arch, fields.deterministic, log=log)
        from hybrid.fields.colliders import Colliders, collider_shape

        from hybrid.roster import Roster

        self.bodies = tuple(bodies)
        roster = Roster.from_scene(scene)
        slots = len(roster) - len(self.bodies)
        # One collider per roster entry: fragment slots are no boundary until their break
        # makes them (``break_body``), each its hull with at most FRAGMENT_PLANES faces.
        self._ids = [b.body_id for b in self.bodies] + [-1] * slots
        shapes = [collider_shape(obj, scene.seed) for obj in scene.objects] + [None] * slots
        self._two_way = fields.coupling == "two_way"
        receives = [self._two_way and b.kind == "dynamic" for b in self.bodies] + [False] * slots
        self._receivers = [i for i, r in enumerate(receives) if r]
        self.colliders = Colliders(shapes, receives, spare_planes=FRAGMENT_PLANES * slots)
        gravity = tuple(scene.physics.gravity)
        self.gas = self.liquid = None
        self._closed = False
        try:
            if fields.gas is not None:
                from hybrid.fields.gas import GasSolver

                self.gas = GasSolver(fields.gas, self.colliders, gravity)
            if fields.liquid is not None:
                from hybrid.fields.mpm import LiquidSolver

                self.liquid = LiquidSolver(fields.liquid, self.colliders, gravity, seed=scene.seed)
        except BaseException:
            self.close()
            raise
        self.burner = None
        if any(obj.physics.flammable is not None for obj in scene.objects):
            from hybrid.fields.burning import Burner
            from hybrid.physics.mass import body_mass

            masses = [body_mass(obj) if obj.physics.flammable is not None else 0.0 for obj in scene.objects]
            self._moments = {b.index: np.asarray(b.moments, dtype=np.float64) for b in self.bodies if b.kind == "dynamic"}
            self._mass0 = {b.index: float(b.mass_kg) for b in self.bodies if b.kind == "dynamic"}
            self.burner = Burner(scene, self.gas, masses, self._set_mass)
        n = len(self._ids)
        self._gas_force = np.zeros((n, 3))
        self._gas_torque = np.zeros((n, 3))
        self._stats = _StatsCollector()

    # ------------------------------------------------------------ stepping

    def _sync_colliders(self):
        """Read every body into the colliders; returns what was read (None without bodies)."""
        if not self._ids:
            return None
        bodies = self._read_bodies()
        self.colliders.set_state(*bodies)
        return bodies

    def before_step(self, t: float, dt: float, first_in_frame: bool) -> None:
        """Advance the fluids over [t, t + dt] (the gas over the whole frame at its first step) and push the bodies."""
        force = np.zeros((len(self._ids), 3))
        torque = np.zeros_like(force)
        if self.gas is not None and first_in_frame:
            bodies = self._sync_colliders()
            frame_dt = self.scene.frame_dt_sim
            if self.burner is not None:
                position, quaternion = bodies[:2]
                wet = None
                if self.liquid is not None:
                    wet = self.burner.wet_cells(self.liquid.positions(), float(self.liquid.p_vol))
                self.burner.update(t, t + frame_dt, position, quaternion, wet)
            report = self.gas.advance(frame_dt, t)
            self._stats.gas(report)
            lin, ang = self.colliders.take_impulses()
            self._gas_force, self._gas_torque = lin / frame_dt, ang / frame_dt
        if self.gas is not None:
            force += self._gas_force
            torque += self._gas_torque
        if self.liquid is not None:
            self._sync_colliders()
            report = self.liquid.advance(dt, t)
            self._stats.liquid(report)
            lin, ang = self.colliders.take_impulses()
            force += lin / dt
            torque += ang / dt
        client = self._client
        for i in self._receivers:
            f, tq = force[i], torque[i]
            if f.any():
                com = p.getBasePositionAndOrientation(self._ids[i], physicsClientId=client)[0]
                p.applyExternalForce(self._ids[i], -1, f.tolist(), com, p.WORLD_FRAME, physicsClientId=client)
            if tq.any():
                p.applyExternalTorque(self._ids[i], -1, tq.tolist(), p.WORLD_FRAME, physicsClientId=client)

    def take_collapses(self) -> list[tuple[int, float]]:
        """(roster index, mass left in kg) of every flammable object consumed since the last call that
        collapses into char fragments (the World breaks them)."""
        return self.burner.take_collapses() if self.burner is not None else []

    def _set_mass(self, index: int, mass: float) -> None:
        """A burning dynamic body's new mass, its principal moments scaled alike (a body burning evenly
        keeps its shape of mass distribution); static and kinematic bodies have no mass in pybullet."""
        mass0 = self._mass0.get(index)
        if not mass0:
            return
        scale = max(mass, 1e-9 * mass0) / mass0
        p.changeDynamics(
            self._ids[index], -1, mass=mass0 * scale, localInertiaDiagonal=(self._moments[index] * scale).tolist(),
            physicsClientId=self._client,
        )

    def break_body(self, index: int, slots: Sequence[int], body_ids: Sequence[int], hulls: Sequence[np.ndarray]) -> None:
        """Body `index` broke: it is no boundary any more, and fragment slot `slots[k]` (pybullet id
        `body_ids[k]`) is the convex hull of `hulls[k]` (its points in its shape frame, which is the
        broken object's): a fragment spanning several convex parts is taken as their hull."""
        from hybrid.fields.colliders import hull_collider

        self.colliders.set_shape(index, None, False)
        self._ids[index] = -1
        if index in self._receivers:
            self._receivers.remove(index)
        for slot, body_id, points in zip(slots, body_ids, hulls):
            self.colliders.set_shape(slot, hull_collider(np.asarray(points), FRAGMENT_PLANES), self._two_way)
            self._ids[slot] = body_id
            if self._two_way:
                self._receivers.append(slot)
        self._gas_force[index] = self._gas_torque[index] = 0.0

    def frame(self) -> FieldFrame:
        """The fields now, with what the solvers did since the last call (``FieldStats``)."""
        stats = self._stats.flush(self.liquid.volume() if self.liquid is not None else 0.0)
        return FieldFrame(
            gas=self.gas.frame() if self.gas is not None else None,
            liquid=self.liquid.frame() if self.liquid is not None else None,
            stats=stats,
            burn=self.burner.frame() if self.burner is not None else None,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for solver in (self.gas, self.liquid):
            if solver is not None:
                solver.close()


class _StatsCollector:
    """Sums solver reports over one frame."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.gas_substeps = self.liquid_substeps = self.iterations = 0
        self.residual = self.divergence = 0.0

    def gas(self, report) -> None:
        self.gas_substeps += int(report.substeps)
        self.iterations = max(self.iterations, int(report.pressure_iterations))
        self.residual = max(self.residual, float(report.pressure_residual))
        self.divergence = max(self.divergence, float(report.max_divergence))

    def liquid(self, report) -> None:
        self.liquid_substeps += int(report.substeps)

    def flush(self, volume: float) -> FieldStats:
        stats = FieldStats(
            gas_substeps=self.gas_substeps,
            pressure_iterations=self.iterations,
            pressure_residual=self.residual,
            max_divergence=self.divergence,
            liquid_substeps=self.liquid_substeps,
            liquid_volume=float(volume),
        )
        self._reset()
        return stats

