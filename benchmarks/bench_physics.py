"""Rigid stepping: hybrid's World against raw pybullet on the same pile of 100 bodies.

Baselines: bare pybullet clients with the same bodies (shapes, masses, materials,
initial poses) and the same engine settings, doing the same stepSimulation calls and
reading, per frame,
- "raw": every pose: the least any consumer of the simulation needs;
- "raw + contacts": every pose, and every step's getContactPoints;
- "raw, same data": every pose and velocity, and every step's getContactPoints: the
  bare calls that fetch what a World's State holds. The ratio against it is what our
  reduction of contacts to events, the State and the blow-up checks cost.

All run in this process, one frame each in turn (so a busy machine slows them
alike), for several repeats; we print the median ratio of the repeats' totals. Only
stepping is timed (building the bodies is not). Run: python benchmarks/bench_physics.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.physics.pybullet_quiet import pybullet as p  # noqa: E402

from hybrid.physics.mass import mass_properties  # noqa: E402
from hybrid.scene.spec import Scene  # noqa: E402
from hybrid.transforms import rotation_quat  # noqa: E402
from hybrid.world import World  # noqa: E402

TARGET = 1.10


def pile_scene(n_objects: int, frames: int, seed: int = 0) -> Scene:
    """`n_objects` spheres and boxes on a jittered grid, dropped onto a plane into a pile."""
    rng = np.random.default_rng(seed)
    objects = [dict(name="floor", shape=dict(type="plane"), physics=dict(body="static", friction=0.8))]
    side = 5
    for i in range(n_objects):
        layer, cell = divmod(i, side * side)
        x = (cell % side - (side - 1) / 2) * 0.22 + rng.uniform(-0.02, 0.02)
        y = (cell // side - (side - 1) / 2) * 0.22 + rng.uniform(-0.02, 0.02)
        z = 0.15 + 0.25 * layer
        if i % 2:
            shape = dict(type="sphere", radius=float(rng.uniform(0.06, 0.09)))
        else:
            shape = dict(type="box", size=[float(s) for s in rng.uniform(0.08, 0.16, size=3)])
        objects.append(
            dict(
                name=f"body{i:03d}",
                shape=shape,
                position=[float(x), float(y), float(z)],
                rotation_deg=[float(a) for a in rng.uniform(0, 360, size=3)],
                physics=dict(friction=0.6, restitution=0.2),
            )
        )
    return Scene.model_validate(dict(name="pile", fps=24, frames=frames, objects=objects))


class RawPybullet:
    """The same scene built with bare pybullet calls: no State, no contacts, no checks."""

    def __init__(self, scene: Scene):
        c = self.client = p.connect(p.DIRECT)
        p.setGravity(*scene.physics.gravity, physicsClientId=c)
        p.setPhysicsEngineParameter(
            fixedTimeStep=scene.physics_dt,
            numSubSteps=scene.physics.substeps,
            numSolverIterations=scene.physics.solver_iterations,
            deterministicOverlappingPairs=1,
            useSplitImpulse=1,
            splitImpulsePenetrationThreshold=0.0,
            physicsClientId=c,
        )
        self.ids = []
        for obj in scene.objects:
            shape = obj.shape
            if shape.type == "plane":
                cs = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=c)
            elif shape.type == "sphere":
                cs = p.createCollisionShape(p.GEOM_SPHERE, radius=shape.radius, physicsClientId=c)
            else:
                cs = p.createCollisionShape(p.GEOM_BOX, halfExtents=[s / 2 for s in shape.size], physicsClientId=c)
            dynamic = obj.physics.body == "dynamic"
            props = mass_properties(obj) if dynamic else None
            body = p.createMultiBody(
                props.mass_kg if props else 0.0,
                cs,
                basePosition=obj.position,
                baseOrientation=rotation_quat(obj.rotation_deg, obj.quaternion),
                useMaximalCoordinates=True,
                physicsClientId=c,
            )
            ph = obj.physics
            p.changeDynamics(
                body, -1, lateralFriction=ph.friction, restitution=ph.restitution,
                linearDamping=ph.linear_damping, angularDamping=ph.angular_damping,
                contactProcessingThreshold=0.0, physicsClientId=c,
            )
            if props:
                p.changeDynamics(
                    body, -1, mass=props.mass_kg, localInertiaDiagonal=props.principal_moments.tolist(),
                    activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING, physicsClientId=c,
                )
            self.ids.append(body)
        self.steps_per_frame = scene.steps_per_frame

    def step(self) -> list:
        c = self.client
        for _ in range(self.steps_per_frame):
            p.stepSimulation(physicsClientId=c)
        return [p.getBasePositionAndOrientation(i, physicsClientId=c) for i in self.ids]

    def step_with_contacts(self) -> list:
        """The same, also fetching every step's contact points: what any consumer of
        contact events pays pybullet before doing anything with them."""
        c = self.client
        for _ in range(self.steps_per_frame):
            p.stepSimulation(physicsClientId=c)
            p.getContactPoints(physicsClientId=c)
        return [p.getBasePositionAndOrientation(i, physicsClientId=c) for i in self.ids]

    def step_same_data(self) -> tuple:
        """Every step's contact points, every pose and every velocity: a State's raw material."""
        c = self.client
        for _ in range(self.steps_per_frame):
            p.stepSimulation(physicsClientId=c)
            p.getContactPoints(physicsClientId=c)
        poses = [p.getBasePositionAndOrientation(i, physicsClientId=c) for i in self.ids]
        return poses, [p.getBaseVelocity(i, physicsClientId=c) for i in self.ids]

    def close(self) -> None:
        p.disconnect(physicsClientId=self.client)


RUNNERS = {
    # label: (what it is, how to make its per-frame step function)
    "world": ("hybrid World (contact events, State, checks)", lambda scene: World(scene)),
    "world_nc": ("hybrid World, physics.record_contacts false", lambda scene: World(scene, collect_contacts=False)),
    "raw": ("raw pybullet: step, poses", lambda scene: RawPybullet(scene)),
    "raw_contacts": ("raw pybullet: step + getContactPoints, poses", lambda scene: RawPybullet(scene)),
    "raw_same": ("raw pybullet: step + getContactPoints, poses, velocities", lambda scene: RawPybullet(scene)),
}
STEP_OF = {"world": "step", "world_nc": "step", "raw": "step", "raw_contacts": "step_with_contacts", "raw_same": "step_same_data"}
RATIOS = [
    # (numerator, denominator, target or None)
    ("world", "raw_same", TARGET),
    ("world_nc", "raw", TARGET),
    ("world", "raw_contacts", None),
    ("world", "raw", None),
]


def run_interleaved(scene: Scene, frames: int) -> dict[str, float]:
    """Seconds of this process's CPU time per frame for each runner, frames taken in turn.

    CPU time, not wall time: the machine may be shared (pybullet DIRECT runs in this
    thread). Taking turns frame by frame exposes every runner to the same load.
    """
    sims = {label: make(scene) for label, (_, make) in RUNNERS.items()}
    steps = {label: getattr(sim, STEP_OF[label]) for label, sim in sims.items()}
    total = dict.fromkeys(sims, 0.0)
    try:
        for _ in range(frames):
            for label, step in steps.items():
                start = time.process_time()
                step()
                total[label] += time.process_time() - start
    finally:
        for sim in sims.values():
            sim.close()
    return {label: t / frames for label, t in total.items()}


def main() -> int:
    from hybrid.physics import contacts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--numpy-scan", action="store_true", help="read contact points with the NumPy scan, not the compiled one")
    args = parser.parse_args()
    if args.numpy_scan:
        from hybrid.physics import contacts

        contacts.scan_step = contacts.scan_step_numpy

    scene = pile_scene(args.objects, args.frames + 1)
    runs = [run_interleaved(scene, args.frames) for _ in range(args.repeats)]
    print(
        f"stepping {args.objects} objects, {args.frames} frames of {scene.steps_per_frame} steps, "
        f"{args.repeats} repeats; contact scan compiled: {contacts.scan_step is not contacts.scan_step_numpy}"
    )
    for label, (what, _) in RUNNERS.items():
        print(f"  {what:58s} {statistics.median(r[label] for r in runs) * 1e3:7.2f} ms/frame")
    for num, den, target in RATIOS:
        ratio = statistics.median(r[num] / r[den] for r in runs)
        goal = f" (target <= {target:.2f}x)" if target else ""
        print(f"  ratio {RUNNERS[num][0]} / {RUNNERS[den][0]}: {ratio:.3f}x{goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
