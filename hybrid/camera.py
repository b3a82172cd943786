"""The camera of a clip: intrinsics and one camera-to-world pose per frame, from the scene spec.

Conventions (the same as the clip files, see DESIGN.md):

- Camera axes are OpenCV: x right, y down, z forward. ``cam_to_world`` maps camera
  coordinates to world coordinates (metres, world z up).
- ``K`` is the 3x3 pinhole matrix for square pixels. Image coordinates (u, v) are in
  pixels with the origin at the top-left *corner* of the image; pixel (row r,
  column c) covers u in [c, c+1], v in [r, r+1], so its centre is (c + 0.5, r + 0.5).
  The principal point is the image centre (W/2, H/2) and ``fov_deg`` is the full
  vertical field of view: fy = (H/2) / tan(fov/2), fx = fy.
- Frame k is at video time k / fps seconds; camera keyframe times are video seconds.

Motions: ``static`` (look-at or an explicit rotation), ``path`` (smooth through
keyframes) and ``orbit`` (a circle around ``look_at``). Each is one function in
``MOTIONS``; a new motion is one function plus one registry line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from hybrid.scene.spec import Camera, Scene
from hybrid.transforms import look_at_cam_to_world, quat_to_matrix


@dataclass(frozen=True)
class CameraTrack:
    """Intrinsics and per-frame poses of a clip's camera.

    K: (3, 3) float64 pinhole matrix in pixels (see the module docstring for the
    pixel-centre convention). cam_to_world: (T, 4, 4) float64, OpenCV camera axes.
    width, height: image size in pixels. near, far: clipping distances in metres.
    """

    K: np.ndarray
    cam_to_world: np.ndarray
    width: int
    height: int
    near: float
    far: float

    @property
    def frame_count(self) -> int:
        return int(self.cam_to_world.shape[0])


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """(3, 3) K for a vertical field of view in degrees, square pixels, principal point at the centre."""
    fy = 0.5 * height / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------- motions
# Each motion maps (camera spec, frame times in video seconds (T,)) -> (T, 4, 4) cam_to_world.


def _static(cam: Camera, times: np.ndarray) -> np.ndarray:
    if cam.quaternion is not None:
        pose = np.eye(4)
        pose[:3, :3] = quat_to_matrix(cam.quaternion)
        pose[:3, 3] = cam.position
    else:
        pose = look_at_cam_to_world(cam.position, cam.look_at, cam.up)
    return np.repeat(pose[None], len(times), axis=0)


def hermite_through(key_t: np.ndarray, key_p: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Interpolate points ``key_p`` (K, D) given at strictly increasing ``key_t`` (K,) at ``times`` (T,).

    A cubic Hermite spline whose tangents are the Catmull-Rom finite differences
    scaled to the real key spacing, m_k = (p_{k+1} - p_{k-1}) / (t_{k+1} - t_{k-1})
    (one-sided at the ends). It passes exactly through every key, is continuous with
    a continuous first derivative in time even for uneven key spacing, and holds the
    first / last key before / after the keyed range.
    """
    key_t = np.asarray(key_t, dtype=np.float64)
    key_p = np.asarray(key_p, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    n = len(key_t)
    if n == 1:
        return np.repeat(key_p[:1], len(times), axis=0)
    tangents = np.empty_like(key_p)
    tangents[0] = (key_p[1] - key_p[0]) / (key_t[1] - key_t[0])
    tangents[-1] = (key_p[-1] - key_p[-2]) / (key_t[-1] - key_t[-2])
    if n > 2:
        tangents[1:-1] = (key_p[2:] - key_p[:-2]) / (key_t[2:] - key_t[:-2])[:, None]
    t = np.clip(times, key_t[0], key_t[-1])
    seg = np.clip(np.searchsorted(key_t, t, side="right") - 1, 0, n - 2)
    dt = key_t[seg + 1] - key_t[seg]
    s = ((t - key_t[seg]) / dt)[:, None]
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    h01 = -2 * s**3 + 3 * s**2
    h11 = s**3 - s**2
    return (
        h00 * key_p[seg]
        + h10 * dt[:, None] * tangents[seg]
        + h01 * key_p[seg + 1]
        + h11 * dt[:, None] * tangents[seg + 1]
    )


def _path(cam: Camera, times: np.ndarray) -> np.ndarray:
    keys = cam.keyframes or []
    key_t = np.array([k.t for k in keys])
    positions = hermite_through(key_t, np.array([k.position for k in keys]), times)
    targets = hermite_through(key_t, np.array([k.look_at for k in keys]), times)
    return np.stack([look_at_cam_to_world(p, q, cam.up) for p, q in zip(positions, targets)])


def _orbit(cam: Camera, times: np.ndarray) -> np.ndarray:
    """Circle around look_at; the angle is measured in the world xy plane from +x towards +y."""
    centre = np.asarray(cam.look_at, dtype=np.float64)
    offset = np.asarray(cam.position, dtype=np.float64) - centre
    radius = cam.orbit_radius if cam.orbit_radius is not None else float(np.hypot(offset[0], offset[1]))
    height = cam.orbit_height if cam.orbit_height is not None else float(offset[2])
    if radius <= 0 and abs(height) < 1e-12:
        raise ValueError("orbit camera: position coincides with look_at; set orbit_radius or orbit_height")
    angles = np.radians(cam.orbit_start_deg + cam.orbit_deg_per_s * np.asarray(times, dtype=np.float64))
    eyes = np.stack(
        [centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles), np.full_like(angles, centre[2] + height)],
        axis=1,
    )
    return np.stack([look_at_cam_to_world(e, centre, cam.up) for e in eyes])


MOTIONS: dict[str, Callable[[Camera, np.ndarray], np.ndarray]] = {
    "static": _static,
    "path": _path,
    "orbit": _orbit,
}


def frame_times(scene: Scene) -> np.ndarray:
    """(T,) video time in seconds of every frame: k / fps."""
    return np.arange(scene.frame_count, dtype=np.float64) / scene.fps


def coincident_frame(scene: Scene, tolerance_m: float = 1e-9) -> Optional[int]:
    """The first frame at which a path camera's position and look_at coincide (no view direction), or None.

    Keyframes whose own position equals their look_at are refused by the spec; this
    finds the frames between keyframes where the two interpolated curves meet. Static
    and orbit cameras are checked by the spec alone.
    """
    cam = scene.camera
    if cam.motion != "path" or not cam.keyframes:
        return None
    keys = cam.keyframes
    key_t = np.array([k.t for k in keys])
    times = frame_times(scene)
    gap = hermite_through(key_t, np.array([k.position for k in keys]), times) - hermite_through(
        key_t, np.array([k.look_at for k in keys]), times
    )
    close = np.flatnonzero(np.linalg.norm(gap, axis=1) < tolerance_m)
    return int(close[0]) if len(close) else None


def camera_track(scene: Scene) -> CameraTrack:
    """The scene camera's intrinsics and per-frame cam_to_world for the whole clip."""
    cam = scene.camera
    poses = MOTIONS[cam.motion](cam, frame_times(scene))
    return CameraTrack(
        K=intrinsics(cam.fov_deg, scene.width, scene.height),
        cam_to_world=np.ascontiguousarray(poses, dtype=np.float64),
        width=scene.width,
        height=scene.height,
        near=float(cam.near),
        far=float(cam.far),
    )
