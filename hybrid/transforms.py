"""Rotations and rigid transforms in the project's conventions: the one home of the quaternion helpers.

Quaternions are (x, y, z, w) as pybullet (and scipy's ``Rotation``); Euler angles are
extrinsic x-y-z (roll about world x, then pitch about world y, then yaw about world z),
which is what pybullet's getQuaternionFromEuler uses. 4x4 matrices act on column vectors.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


Quat = tuple[float, float, float, float]


def quat_multiply(a, b) -> np.ndarray:
    """Hamilton product a * b of (x, y, z, w) quaternions, (4,) or row by row (N, 4): rotate by b, then by a."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_conjugate(q) -> np.ndarray:
    """(x, y, z, w) -> (-x, -y, -z, w), (4,) or (N, 4): the inverse rotation of a unit quaternion."""
    out = np.array(q, dtype=np.float64)
    out[..., :3] = -out[..., :3]
    return out


def quat_from_rotation_vector(rv: Sequence[float]) -> Quat:
    """Axis * angle (radians) -> (x, y, z, w)."""
    angle = math.sqrt(sum(c * c for c in rv))
    if angle < 1e-300:
        return (0.0, 0.0, 0.0, 1.0)
    s = math.sin(angle / 2) / angle
    return (rv[0] * s, rv[1] * s, rv[2] * s, math.cos(angle / 2))


def rotation_vector_between(q0: Sequence[float], q1: Sequence[float]) -> np.ndarray:
    """World-axes rotation vector (axis * angle, radians) of the shortest turn taking q0 to q1."""
    x, y, z, w = (float(c) for c in quat_multiply(q1, quat_conjugate(q0)))
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    s = math.sqrt(x * x + y * y + z * z)
    if s < 1e-300:
        return np.zeros(3)
    angle = 2.0 * math.atan2(s, w)
    return np.array([x, y, z]) * (angle / s)


def quat_to_matrix(q: Sequence[float]) -> np.ndarray:
    """(x, y, z, w) -> 3x3 rotation matrix (float64)."""
    x, y, z, w = (float(c) for c in q)
    n = x * x + y * y + z * z + w * w
    s = 2.0 / n if n > 0 else 0.0
    return np.array(
        [
            [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
            [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
            [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
        ]
    )


def quats_to_matrices(q: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (x, y, z, w) -> (N, 3, 3) rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(q.shape[:-1] + (3, 3))
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - z * w)
    out[..., 0, 2] = 2 * (x * z + y * w)
    out[..., 1, 0] = 2 * (x * y + z * w)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - x * w)
    out[..., 2, 0] = 2 * (x * z - y * w)
    out[..., 2, 1] = 2 * (y * z + x * w)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def matrix_to_quat(m: np.ndarray) -> tuple[float, float, float, float]:
    """3x3 rotation matrix -> (x, y, z, w) with w >= 0."""
    m = np.asarray(m, dtype=np.float64)
    t = m[0, 0] + m[1, 1] + m[2, 2]
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return tuple(float(c) for c in q)  # type: ignore[return-value]


def euler_deg_to_quat(rpy_deg: Sequence[float]) -> tuple[float, float, float, float]:
    """Extrinsic x-y-z Euler angles in degrees -> (x, y, z, w); R = Rz(yaw) Ry(pitch) Rx(roll)."""
    r, p, y = (math.radians(float(a)) for a in rpy_deg)
    cr, sr = math.cos(r / 2), math.sin(r / 2)
    cp, sp = math.cos(p / 2), math.sin(p / 2)
    cy, sy = math.cos(y / 2), math.sin(y / 2)
    return (
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
        cr * cp * cy + sr * sp * sy,
    )


def rotation_quat(rotation_deg: Optional[Sequence[float]], quaternion: Optional[Sequence[float]]) -> tuple[float, float, float, float]:
    """The quaternion a spec gives through either `rotation_deg` or `quaternion` (identity if neither)."""
    if quaternion is not None:
        return tuple(float(c) for c in quaternion)  # type: ignore[return-value]
    if rotation_deg is not None:
        return euler_deg_to_quat(rotation_deg)
    return (0.0, 0.0, 0.0, 1.0)


def pose_matrix(position: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """Position + (x, y, z, w) -> 4x4 homogeneous matrix."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(quaternion)
    m[:3, 3] = np.asarray(position, dtype=np.float64)
    return m


def pose_matrices(positions: np.ndarray, quaternions: np.ndarray) -> np.ndarray:
    """(N, 3) positions + (N, 4) quaternions -> (N, 4, 4)."""
    n = len(positions)
    out = np.tile(np.eye(4), (n, 1, 1))
    if n:
        out[:, :3, :3] = quats_to_matrices(quaternions)
        out[:, :3, 3] = positions
    return out


def slerp(q0: Sequence[float], q1: Sequence[float], u: float) -> tuple[float, float, float, float]:
    """Spherical linear interpolation between unit quaternions, u in [0, 1]."""
    a = np.asarray(q0, dtype=np.float64)
    b = np.asarray(q1, dtype=np.float64)
    d = float(np.dot(a, b))
    if d < 0:
        b, d = -b, -d
    if d > 0.9995:
        q = a + u * (b - a)
    else:
        th = math.acos(min(1.0, d))
        q = (math.sin((1 - u) * th) * a + math.sin(u * th) * b) / math.sin(th)
    q /= np.linalg.norm(q)
    return tuple(float(c) for c in q)  # type: ignore[return-value]


def look_at_cam_to_world(position: Sequence[float], target: Sequence[float], up: Sequence[float] = (0, 0, 1)) -> np.ndarray:
    """4x4 camera-to-world in OpenCV axes (x right, y down, z forward) looking from position at target."""
    eye = np.asarray(position, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    nz = np.linalg.norm(z)
    if nz < 1e-12:
        raise ValueError("camera position and look_at coincide")
    z /= nz
    upv = np.asarray(up, dtype=np.float64)
    x = np.cross(z, upv)
    if np.linalg.norm(x) < 1e-9:  # looking straight along `up`: pick any perpendicular
        x = np.cross(z, np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye
    return m


# OpenCV camera axes (x right, y down, z forward) -> OpenGL/pyrender axes (x right, y up, z back).
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def frame_with_z(z_axis: np.ndarray, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A 4x4 pose whose local z axis is ``z_axis`` (pyrender and Blender lights shine along their local -z)."""
    z = np.asarray(z_axis, dtype=np.float64)
    z = z / np.linalg.norm(z)
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, np.cross(z, x), z, origin
    return pose
