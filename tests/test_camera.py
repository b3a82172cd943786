"""Camera intrinsics and per-frame poses against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybrid.camera import camera_track, hermite_through, intrinsics
from hybrid.scene.spec import Scene
from hybrid.transforms import matrix_to_quat


def _scene(camera: dict, fps: float = 4.0, frames: int = 13, resolution=(200, 100)) -> Scene:
    return Scene.model_validate(dict(name="cam", fps=fps, frames=frames, resolution=list(resolution), camera=camera))


def _project(track, k: int, point) -> np.ndarray:
    """Pixel coordinates (u, v) of a world point in frame k."""
    world_to_cam = np.linalg.inv(track.cam_to_world[k])
    p = world_to_cam[:3, :3] @ np.asarray(point, float) + world_to_cam[:3, 3]
    uvw = track.K @ p
    return uvw[:2] / uvw[2]


def _assert_rigid(poses: np.ndarray) -> None:
    R = poses[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(R), 1.0)
    assert np.allclose(poses[:, 3], [0, 0, 0, 1])


def test_intrinsics_from_vertical_fov():
    # 90 degrees vertical over 100 rows: f = 50 / tan(45 deg) = 50 px; centre (100, 50).
    K = intrinsics(90.0, 200, 100)
    assert np.allclose(K, [[50, 0, 100], [0, 50, 50], [0, 0, 1]], atol=1e-12)
    # 60 degrees over 240 rows: f = 120 / tan(30 deg) = 120 sqrt(3).
    assert math.isclose(intrinsics(60.0, 320, 240)[1, 1], 120 * math.sqrt(3), rel_tol=1e-12)


def test_static_look_at_puts_target_at_principal_point():
    track = camera_track(_scene(dict(position=[3, -2, 1.5], look_at=[0.5, 0.2, 0.3], fov_deg=90)))
    assert track.cam_to_world.shape == (13, 4, 4) and track.cam_to_world.dtype == np.float64
    assert (track.width, track.height) == (200, 100)
    _assert_rigid(track.cam_to_world)
    assert np.allclose(_project(track, 0, [0.5, 0.2, 0.3]), [100, 50], atol=1e-9)
    assert np.allclose(track.cam_to_world[0, :3, 3], [3, -2, 1.5])
    assert np.all(track.cam_to_world == track.cam_to_world[0])
    # OpenCV axes: world up (+z) appears towards the top of the image (smaller v).
    above = _project(track, 0, [0.5, 0.2, 0.8])
    assert above[1] < 50


def test_static_quaternion_is_camera_to_world_rotation():
    # Looking along world +x: camera x (right) = world -y, camera y (down) = world -z, camera z = world +x.
    R = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    track = camera_track(_scene(dict(position=[1, 2, 3], quaternion=list(matrix_to_quat(R)))))
    assert np.allclose(track.cam_to_world[0, :3, :3], R, atol=1e-12)
    assert np.allclose(_project(track, 0, [5, 2, 3]), [100, 50], atol=1e-9)
    # A point to the world's -y side (the camera's right) lands right of centre.
    assert _project(track, 0, [5, 1, 3])[0] > 100


KEYS = [
    dict(t=0.5, position=[4, 0, 2], look_at=[0, 0, 0]),
    dict(t=1.0, position=[0, 4, 2.5], look_at=[0, 0, 0.5]),
    dict(t=2.25, position=[-4, 0, 1], look_at=[1, 0, 0]),
]


def test_path_passes_through_keyframes_and_clamps():
    # fps 4: frames at 0, 0.25, ..., 3.0 s; keyframes at 0.5 (frame 2), 1.0 (frame 4), 2.25 (frame 9).
    track = camera_track(_scene(dict(motion="path", keyframes=KEYS)))
    _assert_rigid(track.cam_to_world)
    for frame, key in ((2, KEYS[0]), (4, KEYS[1]), (9, KEYS[2])):
        assert np.allclose(track.cam_to_world[frame, :3, 3], key["position"], atol=1e-12)
        assert np.allclose(_project(track, frame, key["look_at"]), [100, 50], atol=1e-9)
    assert np.allclose(track.cam_to_world[:2], track.cam_to_world[2])  # before the first key
    assert np.allclose(track.cam_to_world[10:], track.cam_to_world[9])  # after the last key
    assert not np.allclose(track.cam_to_world[3], track.cam_to_world[2])


def test_path_is_continuous():
    # At 240 fps a continuous path moves little per frame; a jump would move a whole segment.
    track = camera_track(_scene(dict(motion="path", keyframes=KEYS), fps=240.0, frames=720))
    steps = np.linalg.norm(np.diff(track.cam_to_world[:, :3, 3], axis=0), axis=1)
    key_t = np.array([k["t"] for k in KEYS])
    key_p = np.array([k["position"] for k in KEYS])
    fastest_chord = np.max(np.linalg.norm(np.diff(key_p, axis=0), axis=1) / np.diff(key_t))
    assert steps.max() < 2.0 * fastest_chord / 240.0
    # Position and velocity match from both sides of the middle key.
    eps = 1e-6
    left, mid, right = hermite_through(key_t, key_p, np.array([1.0 - eps, 1.0, 1.0 + eps]))
    assert np.allclose(left, mid, atol=1e-5) and np.allclose(right, mid, atol=1e-5)
    assert np.allclose((mid - left) / eps, (right - mid) / eps, rtol=1e-3, atol=1e-3)


def test_hermite_reproduces_a_line():
    # Keys on a straight line at uneven times with constant speed: the spline is that line.
    key_t = np.array([0.0, 0.3, 1.0, 1.2])
    key_p = np.stack([2 * key_t, -key_t, np.ones(4)], 1)
    t = np.linspace(0, 1.2, 37)
    assert np.allclose(hermite_through(key_t, key_p, t), np.stack([2 * t, -t, np.ones_like(t)], 1), atol=1e-12)


def test_orbit_angles_radius_and_height():
    # Default radius: horizontal distance of (3, 4) from look_at (0, 0) = 5; height 2 - 0.5 = 1.5.
    cam = dict(motion="orbit", position=[3, 4, 2], look_at=[0, 0, 0.5], orbit_start_deg=10, orbit_deg_per_s=40)
    track = camera_track(_scene(cam))
    _assert_rigid(track.cam_to_world)
    for k in range(13):
        a = math.radians(10 + 40 * k / 4.0)
        assert np.allclose(track.cam_to_world[k, :3, 3], [5 * math.cos(a), 5 * math.sin(a), 2.0], atol=1e-12)
        assert np.allclose(_project(track, k, [0, 0, 0.5]), [100, 50], atol=1e-9)
    explicit = camera_track(_scene(dict(cam, orbit_radius=2.0, orbit_height=-0.25)))
    a = math.radians(10 + 40 * 3 / 4.0)
    assert np.allclose(explicit.cam_to_world[3, :3, 3], [2 * math.cos(a), 2 * math.sin(a), 0.25], atol=1e-12)


def test_near_far_carried():
    track = camera_track(_scene(dict(near=0.2, far=30)))
    assert (track.near, track.far) == (0.2, 30.0)


@pytest.mark.parametrize("motion", ["static", "orbit"])
def test_one_pose_per_frame(motion):
    track = camera_track(_scene(dict(motion=motion), frames=7))
    assert track.cam_to_world.shape == (7, 4, 4) and track.frame_count == 7
