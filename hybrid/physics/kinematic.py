"""Prescribed motion of kinematic bodies: pose at a simulated time, velocity over a step.

A kinematic body follows its keyframes whatever hits it: position interpolates
linearly and rotation by ``transforms.slerp`` between neighbouring keyframes; before
the first keyframe and after the last the pose is held. A keyframe without a
rotation keeps the object's own rotation. Without keyframes the body moves with its
constant initial linear and angular velocity from its initial pose.

The world moves a kinematic body once per pybullet step and also tells pybullet its
velocity over that step, because a mass-0 body only pushes, drags and bounces what it
touches through the velocity the contact solver sees.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from hybrid.scene import spec
from hybrid.transforms import (
    Quat,
    quat_from_rotation_vector,
    quat_multiply,
    rotation_quat,
    rotation_vector_between,
    slerp,
)


class KinematicTrack:
    """Where a kinematic body is at simulated time t (seconds)."""

    def __init__(
        self,
        times: Sequence[float],
        positions: Sequence[Sequence[float]],
        quaternions: Sequence[Quat],
        linear_velocity: Sequence[float] = (0.0, 0.0, 0.0),
        angular_velocity: Sequence[float] = (0.0, 0.0, 0.0),
    ):
        """Keyframes (K >= 1, strictly increasing `times`), or one pose plus constant velocities.

        `linear_velocity` (m/s) and `angular_velocity` (rad/s, world axes) apply only
        when a single pose is given at time 0 and no keyframes were written.
        """
        self.times = np.asarray(times, dtype=np.float64)
        self.positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        self.quaternions = [tuple(float(c) for c in q) for q in quaternions]
        self.linear_velocity = np.asarray(linear_velocity, dtype=np.float64)
        self.angular_velocity = np.asarray(angular_velocity, dtype=np.float64)
        self._constant = len(self.times) == 1 and (self.linear_velocity.any() or self.angular_velocity.any())

    @classmethod
    def from_spec(cls, obj: spec.ObjectSpec) -> "KinematicTrack":
        own_quat = rotation_quat(obj.rotation_deg, obj.quaternion)
        frames: Optional[list[spec.Keyframe]] = obj.physics.keyframes
        if not frames:
            return cls([0.0], [obj.position], [own_quat], obj.physics.linear_velocity, obj.physics.angular_velocity)
        quats = [
            rotation_quat(k.rotation_deg, k.quaternion) if (k.rotation_deg is not None or k.quaternion is not None) else own_quat
            for k in frames
        ]
        return cls([k.t for k in frames], [k.position for k in frames], quats)

    def pose(self, t: float) -> tuple[np.ndarray, Quat]:
        """Position (3,) metres and quaternion (x, y, z, w) at simulated time `t` seconds."""
        if self._constant:
            turn = quat_from_rotation_vector(self.angular_velocity * t)
            q = tuple(float(c) for c in quat_multiply(turn, self.quaternions[0]))
            return self.positions[0] + self.linear_velocity * t, q
        times = self.times
        if t <= times[0]:
            return self.positions[0].copy(), self.quaternions[0]
        if t >= times[-1]:
            return self.positions[-1].copy(), self.quaternions[-1]
        k = int(np.searchsorted(times, t, side="right")) - 1
        u = (t - times[k]) / (times[k + 1] - times[k])
        pos = self.positions[k] + u * (self.positions[k + 1] - self.positions[k])
        return pos, slerp(self.quaternions[k], self.quaternions[k + 1], u)

    def velocity(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean linear (m/s) and angular (rad/s, world axes) velocity over [t0, t1]."""
        if self._constant:
            return self.linear_velocity.copy(), self.angular_velocity.copy()
        p0, q0 = self.pose(t0)
        p1, q1 = self.pose(t1)
        dt = t1 - t0
        return (p1 - p0) / dt, rotation_vector_between(q0, q1) / dt
