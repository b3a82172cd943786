"""Rigid stepping: hybrid's World against raw pybullet on the same pile of 100 bodies.

Baseline: a bare pybullet client with the same bodies (shapes, masses, materials,
initial poses) and the same engine settings, doing the same number of
stepSimulation calls plus one read of every pose per frame, the least any consumer
of the simulation needs. Our World also reads velocities, moves kinematic bodies,
collects contacts every step and checks for blow-ups; the ratio is what that costs.

Both run in this process, alternating, several times; we print the median ratio.
Only stepping is timed (building the bodies is not). Run: python benchmarks/bench_physics.py
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

    def close(self) -> None:
        p.disconnect(physicsClientId=self.client)


def time_frames(step, frames: int) -> float:
    """Seconds of this process's CPU time per frame: the machine may be shared, and wall time
    would also count whatever else ran meanwhile (pybullet DIRECT runs in this thread)."""
    start = time.process_time()
    for _ in range(frames):
        step()
    return (time.process_time() - start) / frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    scene = pile_scene(args.objects, args.frames + 1)
    times: dict[str, list[float]] = {"contacts": [], "no contacts": [], "raw": [], "raw contacts": []}
    for _ in range(args.repeats):
        for label, collect in (("contacts", True), ("no contacts", False)):
            with World(scene, collect_contacts=collect) as world:
                times[label].append(time_frames(world.step, args.frames))
        baseline = RawPybullet(scene)
        try:
            times["raw"].append(time_frames(baseline.step, args.frames))
        finally:
            baseline.close()
        baseline = RawPybullet(scene)
        try:
            times["raw contacts"].append(time_frames(baseline.step_with_contacts, args.frames))
        finally:
            baseline.close()
    raw_ms = statistics.median(times["raw"]) * 1e3
    for label, what in (("contacts", "World"), ("no contacts", "World(collect_contacts=False)")):
        ratio = statistics.median(o / r for o, r in zip(times[label], times["raw"]))
        print(
            f"stepping {args.objects} objects, {args.frames} frames: "
            f"hybrid {what} {statistics.median(times[label]) * 1e3:.2f} ms/frame, raw pybullet {raw_ms:.2f} ms/frame, "
            f"ratio X/Y = {ratio:.3f}x (target <= {TARGET:.2f}x)"
        )
    raw_c_ms = statistics.median(times["raw contacts"]) * 1e3
    ratio = statistics.median(o / r for o, r in zip(times["contacts"], times["raw contacts"]))
    print(
        f"stepping {args.objects} objects, {args.frames} frames, contact events on both sides: "
        f"hybrid World {statistics.median(times['contacts']) * 1e3:.2f} ms/frame, raw pybullet + getContactPoints "
        f"every step {raw_c_ms:.2f} ms/frame, ratio X/Y = {ratio:.3f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
