"""World: the live simulation of a Scene, stepped frame by frame into plain States.

Each World owns a private pybullet client in DIRECT mode and passes its id to every
pybullet call, so any number of Worlds live side by side in one process without
touching each other (or pybullet's default client).

Time. A video frame spans ``scene.frame_dt_sim`` simulated seconds
(``time_scale / fps``), made of ``scene.steps_per_frame`` pybullet steps of
``scene.physics_dt`` seconds. ``initial_state()`` is frame 0 at t = 0 before any step;
frame k is at t = k * frame_dt_sim.

What a State holds (see ``hybrid.state``): per object in scene order, the pose of its
shape frame (the frame ``geometry.build_mesh`` uses, not pybullet's centre-of-mass
frame), the linear velocity of that frame's origin (m/s; the centre of mass's velocity
plus omega x the lever from the centre of mass, so it is the time derivative of the
reported position) and the angular velocity (rad/s, world axes); plus the frame's
contacts (``hybrid.physics.contacts``).

Velocities and motion. Between frames a body moves by what its velocity integrates
to, plus Bullet's split-impulse corrections, which push penetrating bodies apart
without any velocity: a fraction of a millimetre per step in resting contact, at most
one step's travel when something lands. A body placed deep inside another would be
pushed out by centimetres per step with zero velocity, so such placements are refused
when the world is built, or separated first with ``physics.resolve_overlaps``
(``hybrid.physics.overlaps``); frame 0 then shows the separated placement.

Per step the world also moves kinematic bodies along their tracks and adds
m * g * (gravity_scale - 1) at the centre of mass of bodies whose gravity is scaled
(pybullet has one global gravity and clears external forces after every step).

Fields. A scene with ``fields:`` also gets a ``FieldSystem`` (``hybrid.fields.system``):
before every pybullet step the fluids advance and push the bodies (two-way
coupling), and each State carries a ``FieldFrame`` snapshot in ``State.fields``.

Breakables. Objects with ``physics.breakable`` break in the physics step whose
contact impulse on them reaches their threshold (``hybrid.physics.breakables``):
the World removes the body and adds its fragments in that step. A flammable object
consumed in a frame collapses into its char fragments at the start of the next
(``hybrid.fields.burning``). States then have
one row per roster entry (``hybrid.roster``: the scene objects, then every fragment
slot), with ``State.present`` saying which exist and ``State.breaks`` listing the
breaks so far.

Determinism: the same scene gives bit-identical States on the same machine; bodies
are created in scene order and pybullet runs with deterministic overlapping pairs
(fields too, at any thread count: ``hybrid.fields.backend``).
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from hybrid.physics.pybullet_quiet import pybullet as p

from hybrid.physics.bodies import Body, create_body
from hybrid.physics.checks import check_state
from hybrid.physics.contacts import ContactAccumulator
from hybrid.physics.errors import PhysicsError
from hybrid.physics.overlaps import refuse_overlaps, separate_overlaps
from hybrid.roster import BreakEvent, Roster
from hybrid.scene.spec import Scene
from hybrid.state import ContactSet, State
from hybrid.transforms import quat_conjugate, quat_multiply, quats_to_matrices

Progress = Optional[Callable[[int, int], None]]  # (frames done, frames in total)


class World:
    """A Scene brought to life in its own pybullet client. Use as a context manager or call ``close()``.

    Attributes: ``scene``; ``names`` (object names in scene order; object i has
    instance id i + 1); ``bodies`` (``hybrid.physics.bodies.Body`` per object: pybullet
    id, kind, mass, inertial frame, collision shape); ``frame`` (last frame produced).
    """

    def __init__(self, scene: Scene, *, collect_contacts: bool = True, log=None):
        """Build every object of `scene` in a new pybullet client.

        `collect_contacts=False` leaves ``State.contacts`` empty and skips reading
        pybullet's contact points after every step, which costs more than anything else
        the world adds to pybullet's own stepping (see benchmarks/bench_physics.py).
        Raises ``BodyBuildError`` for an object that cannot be built (e.g. an unreadable mesh),
        and ``OverlapError`` when objects start inside each other, unless
        ``physics.resolve_overlaps`` asks to move them apart first (``hybrid.physics.overlaps``).
        A scene with ``fields:`` also starts its fluid solvers (``hybrid.fields.system``);
        `log` takes their one-line messages (default: stderr).
        """
        self.scene = scene
        self.collect_contacts = bool(collect_contacts)
        self.roster = Roster.from_scene(scene)
        self.names: tuple[str, ...] = self.roster.names
        self._client: Optional[int] = None
        client = p.connect(p.DIRECT)
        if client < 0:
            raise PhysicsError("pybullet could not start a physics client (DIRECT mode)")
        self._client = client
        try:
            self._configure(client)
            self.bodies: tuple[Body, ...] = tuple(
                create_body(client, obj, i, scene.seed, scene.physics_dt) for i, obj in enumerate(scene.objects)
            )
            # Checked here as well as at load time: scenes made in code (dataset recipes)
            # never pass through the loader.
            if scene.physics.resolve_overlaps:
                separate_overlaps(client, scene, self.bodies)
            else:
                refuse_overlaps(client, scene, self.bodies)
        except BaseException:
            self.close()
            raise
        self._ids = [b.body_id for b in self.bodies]
        self._kinematic = [b for b in self.bodies if b.track is not None]
        gravity = np.asarray(scene.physics.gravity, dtype=np.float64)
        self._gravity = gravity
        self._scaled_gravity = [
            (b.body_id, (gravity * b.mass_kg * (b.gravity_scale - 1.0)).tolist())
            for b in self.bodies
            if b.kind == "dynamic" and b.gravity_scale != 1.0
        ]
        n = len(self.roster)
        # Per roster entry: pybullet id (-1 when absent), whether it exists now, and the
        # inertial frame in its shape frame (fragments: their centroid and principal axes).
        self._present = self.roster.initially_present()
        self._body_id = np.full(n, -1, dtype=np.int64)
        self._body_id[: len(self.bodies)] = self._ids
        self._com_local = np.zeros((n, 3))
        self._inertial_quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
        self._has_offset = np.zeros(n, dtype=bool)
        for b in self.bodies:
            self._com_local[b.index] = b.com_local
            self._inertial_quat[b.index] = b.inertial_quat
            self._has_offset[b.index] = b.has_offset
        self._frozen: dict[int, tuple[np.ndarray, ...]] = {}  # broken entries: their row at the break
        self._breaks: tuple[BreakEvent, ...] = ()
        self._refresh_live()
        self._contacts = ContactAccumulator(
            self.names,
            self._ids,
            [b.kind != "static" for b in self.bodies] + [True] * (n - len(self.bodies)),
            # normalForce is the last substep's impulse over the whole step (see contacts.py).
            impulse_per_force=scene.physics_dt * scene.physics.substeps,
            max_body_id=len(self.bodies) + n,
        )
        self._breaker = None
        if self.roster.has_breakables:
            from hybrid.physics.breakables import Breaker

            self._breaker = Breaker(self)
        self._step_index = 0
        self._frame = 0
        self.fields = None
        if scene.fields is not None:
            from hybrid.fields.system import FieldSystem

            try:
                self.fields = FieldSystem(scene, client, self.bodies, self.read_bodies, log=log)
            except BaseException:
                self.close()
                raise
        self._initial = self._read_state(0, ContactSet.empty())

    def _configure(self, client: int) -> None:
        settings = self.scene.physics
        p.setGravity(*settings.gravity, physicsClientId=client)
        p.setPhysicsEngineParameter(
            fixedTimeStep=self.scene.physics_dt,
            numSubSteps=settings.substeps,
            numSolverIterations=settings.solver_iterations,
            deterministicOverlappingPairs=1,
            # Push overlapping bodies apart with a separate position correction instead
            # of extra velocity, so a bounce leaves with exactly e times its impact speed.
            # (A threshold of 0 splits every penetrating contact; pybullet ignores
            # negative values.) Tall stacks then creep slowly at coarse timesteps: more
            # solver_iterations or a smaller timestep hold them.
            useSplitImpulse=1,
            splitImpulsePenetrationThreshold=0.0,
            physicsClientId=client,
        )

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> "World":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect the pybullet client; safe to call more than once."""
        fields, self.fields = getattr(self, "fields", None), None
        if fields is not None:
            fields.close()
        client, self._client = getattr(self, "_client", None), None
        if client is None:
            return
        try:
            p.disconnect(physicsClientId=client)
        except Exception:  # already gone (interpreter shutdown): nothing left to free
            pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _require_open(self) -> int:
        if self._client is None:
            raise PhysicsError("this World is closed; build a new World(scene) to simulate again")
        return self._client

    # ------------------------------------------------------------ stepping

    @property
    def frame(self) -> int:
        """Index of the last frame produced (0 before the first ``step()``)."""
        return self._frame

    def initial_state(self) -> State:
        """Frame 0 at t = 0 s, before any physics step (the same State however far the world has run)."""
        check_state(self._initial, self.scene.physics.max_speed)
        return self._initial

    def step(self) -> State:
        """Advance one video frame (``scene.steps_per_frame`` pybullet steps) and return its State.

        Raises ``SimulationError`` if the result is non-finite or faster than ``physics.max_speed``.
        """
        client = self._require_open()
        dt = self.scene.physics_dt
        step_simulation, contact_points = p.stepSimulation, p.getContactPoints
        add_contacts, collect = self._contacts.add_step, self.collect_contacts
        fields = self.fields
        for k in range(self.scene.steps_per_frame):
            if fields is not None and k == 0 and self._breaker is not None:
                for index, mass in fields.take_collapses():
                    self._breaker.collapse(client, index, self._step_index, self._frame + 1, mass)
            if fields is not None:
                fields.before_step(self._step_index * dt, dt, k == 0)
            if self._scaled_gravity:
                self._apply_gravity_scale(client)
            step_simulation(physicsClientId=client)
            if collect:
                add_contacts(contact_points(physicsClientId=client))
            self._step_index += 1
            if self._breaker is not None and self._breaker.armed:
                self._breaker.after_step(client, self._step_index, self._frame + 1)
            if self._kinematic:
                # Ready for the next step (and exact in this frame's State after the last one).
                self._drive_kinematic(client, self._step_index * dt, dt)
        contacts = self._contacts.flush() if collect else ContactSet.empty()
        self._frame += 1
        state = self._read_state(self._frame, contacts)
        check_state(state, self.scene.physics.max_speed)
        return state

    def run(self, progress: Progress = None) -> list[State]:
        """Simulate the whole clip: ``scene.frame_count`` States, frame k at t = k * frame_dt_sim.

        `progress(done, total)` is called after each frame with the number of frames made so far.
        """
        if self._frame != 0:
            raise PhysicsError(
                f"run() simulates from frame 0 but this World is already at frame {self._frame}; "
                "build a new World(scene), or keep calling step()"
            )
        total = self.scene.frame_count
        states = [self.initial_state()]
        if progress is not None:
            progress(1, total)
        for done in range(2, total + 1):
            states.append(self.step())
            if progress is not None:
                progress(done, total)
        return states

    # ------------------------------------------------------------ per-step work

    def _drive_kinematic(self, client: int, t: float, dt: float) -> None:
        """Place kinematic bodies at their pose at `t` with their velocity over [t, t + dt]."""
        for body in self._kinematic:
            track = body.track
            position, quat = track.pose(t)  # type: ignore[union-attr]
            linear, angular = track.velocity(t, t + dt)  # type: ignore[union-attr]
            p.resetBasePositionAndOrientation(body.body_id, position.tolist(), quat, physicsClientId=client)
            p.resetBaseVelocity(body.body_id, linear.tolist(), angular.tolist(), physicsClientId=client)

    def _apply_gravity_scale(self, client: int) -> None:
        for body_id, force in self._scaled_gravity:
            com = p.getBasePositionAndOrientation(body_id, physicsClientId=client)[0]
            p.applyExternalForce(body_id, -1, force, com, p.WORLD_FRAME, physicsClientId=client)

    # ------------------------------------------------------------ reading

    def read_bodies(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every roster entry now: shape-frame position (N, 3) and quaternion (N, 4), the shape
        origin's velocity (N, 3), angular velocity (N, 3), and the centre of mass (N, 3).

        Rows of entries that do not exist hold, for a broken object, its row at the break
        and, for a fragment not made yet, its parent's row (``hybrid.roster``)."""
        client = self._require_open()
        ids = self._live_ids
        n = len(ids)
        poses = [p.getBasePositionAndOrientation(i, physicsClientId=client) for i in ids]
        velocities = [p.getBaseVelocity(i, physicsClientId=client) for i in ids]
        position = np.array([pose[0] for pose in poses], dtype=np.float64).reshape(n, 3)
        quaternion = np.array([pose[1] for pose in poses], dtype=np.float64).reshape(n, 4)
        linear = np.array([v[0] for v in velocities], dtype=np.float64).reshape(n, 3)
        angular = np.array([v[1] for v in velocities], dtype=np.float64).reshape(n, 3)
        com = position.copy()  # pybullet's base frame is the inertial (centre-of-mass) frame
        if len(self._offset_index):
            self._to_shape_frame(position, quaternion, linear, angular)
        if self._all_live:
            return position, quaternion, linear, angular, com
        rows = (position, quaternion, linear, angular, com)
        full = tuple(np.empty((len(self.names),) + r.shape[1:]) for r in rows)
        live = self._live_index
        for f, r in zip(full, rows):
            f[live] = r
        for i in self._absent:
            frozen = self._frozen.get(i)
            source = frozen if frozen is not None else tuple(f[self.roster.parent[i]] for f in full)
            for f, value in zip(full, source):
                f[i] = value
        return full  # type: ignore[return-value]

    def _refresh_live(self) -> None:
        """Index the entries that exist now (after the world is built and after every break)."""
        live = np.flatnonzero(self._present)
        self._live_index = live
        self._live_ids = self._body_id[live].tolist()
        self._all_live = len(live) == len(self.names)
        self._absent = np.flatnonzero(~self._present).tolist()
        # Offset rows, as positions in the live arrays.
        offset = np.flatnonzero(self._has_offset[live])
        self._offset_index = offset
        self._offset_com = self._com_local[live[offset]].reshape(-1, 3)
        self._offset_inv_quat = quat_conjugate(self._inertial_quat[live[offset]].reshape(-1, 4))

    def _read_state(self, frame: int, contacts: ContactSet) -> State:
        position, quaternion, linear, angular, _ = self.read_bodies()
        return State(
            frame=frame,
            time_s=frame * self.scene.frame_dt_sim,
            names=self.names,
            position=position,
            quaternion=quaternion,
            linear_velocity=linear,
            angular_velocity=angular,
            contact_set=contacts,
            fields=self.fields.frame() if self.fields is not None else None,
            present=None if self._breaker is None else self._present.copy(),
            breaks=self._breaks,
        )

    def _to_shape_frame(self, position: np.ndarray, quaternion: np.ndarray, linear: np.ndarray, angular: np.ndarray) -> None:
        """Turn pybullet's inertial-frame poses (and COM velocities) of offset bodies into shape-frame ones, in place."""
        idx = self._offset_index
        q_shape = quat_multiply(quaternion[idx], self._offset_inv_quat)
        q_shape /= np.linalg.norm(q_shape, axis=1, keepdims=True)
        lever = np.einsum("nij,nj->ni", quats_to_matrices(q_shape), self._offset_com)  # shape origin -> COM, world axes
        com = position[idx]
        position[idx] = com - lever
        quaternion[idx] = q_shape
        linear[idx] = linear[idx] - np.cross(angular[idx], lever)
