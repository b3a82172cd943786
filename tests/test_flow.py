"""Exact flow against motion worked out by hand, and against rendered frames (warping)."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.camera import intrinsics
from hybrid.render.flow import clip_flows, flow_between
from hybrid.transforms import euler_deg_to_quat, look_at_cam_to_world, pose_matrix, quat_to_matrix

W, H = 48, 32
K = intrinsics(60.0, W, H)
FX, CX, CY = K[0, 0], K[0, 2], K[1, 2]
U, V = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)


def _backproject(depth, cam_to_world):
    """World points (H, W, 3) of pixel centres at z-depth ``depth``."""
    cam = np.stack([(U - CX) / FX * depth, (V - CY) / FX * depth, depth], -1)
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def _project(points, cam_to_world):
    cam = (points - cam_to_world[:3, 3]) @ cam_to_world[:3, :3]
    return np.stack([FX * cam[..., 0] / cam[..., 2] + CX, FX * cam[..., 1] / cam[..., 2] + CY], -1), cam[..., 2]


def test_object_translation_analytic():
    """Camera at the origin looking down +z; a fronto-parallel patch at z = 4 translates by (0.2, -0.1, 0.5).

    A point X = ((u - cx) z / f, (v - cy) z / f, z) moves to X + t and projects to
    u' = cx + f (X + tx) / (z + tz): the flow is u' - u, v' - v.
    """
    z, t = 4.0, np.array([0.2, -0.1, 0.5])
    depth = np.zeros((H, W), np.float32)
    instance = np.zeros((H, W), np.uint16)
    depth[8:24, 10:40] = z
    instance[8:24, 10:40] = 2
    depth[0:4] = 3.0  # scenery without an instance: static
    cam = np.eye(4)
    poses_a = np.stack([pose_matrix((5, 5, 5), (0, 0, 0, 1)), pose_matrix((0.1, 0.2, 4.0), euler_deg_to_quat((10, 20, 30)))])
    poses_b = poses_a.copy()
    poses_b[1, :3, 3] += t
    flow = flow_between(depth, instance, K, cam, cam, poses_a, poses_b)
    assert flow.dtype == np.float32 and flow.shape == (H, W, 2)
    X, Y = (U - CX) * z / FX, (V - CY) * z / FX
    expected = np.stack([CX + FX * (X + t[0]) / (z + t[2]) - U, CY + FX * (Y + t[1]) / (z + t[2]) - V], -1)
    patch = instance == 2
    assert np.allclose(flow[patch], expected[patch], atol=1e-4)
    assert np.abs(expected[patch]).max() > 2  # a real motion
    assert np.all(flow[~patch] == 0)  # static scenery and background: the camera did not move


def test_object_rotation_about_its_centre():
    """A point X of an object with centre c turned by R goes to c + R (X - c)."""
    depth = np.full((H, W), 5.0, np.float32)
    instance = np.ones((H, W), np.uint16)
    cam = look_at_cam_to_world((0, -5, 0), (0, 0, 0))
    centre = np.array([0.2, 0.3, -0.1])
    q = euler_deg_to_quat((5, -8, 12))
    poses_a = pose_matrix(centre, (0, 0, 0, 1))[None]
    poses_b = pose_matrix(centre, q)[None]
    X = _backproject(depth, cam)
    moved = centre + (X - centre) @ quat_to_matrix(q).T
    expected = _project(moved, cam)[0] - np.stack([U, V], -1)
    assert np.allclose(flow_between(depth, instance, K, cam, cam, poses_a, poses_b), expected, atol=1e-3)


def test_camera_motion_over_static_scene():
    rng = np.random.default_rng(3)
    depth = rng.uniform(2.0, 6.0, (H, W)).astype(np.float32)
    depth[:, :6] = 0  # background: directions at infinity
    instance = np.zeros((H, W), np.uint16)
    instance[10:20, 10:20] = 1  # an object that does not move is static scenery too
    cam_a = look_at_cam_to_world((0, -6, 1), (0, 0, 0.5))
    cam_b = look_at_cam_to_world((0.4, -5.7, 1.2), (0.1, 0, 0.4))
    poses = pose_matrix((0, 0, 0.5), euler_deg_to_quat((0, 0, 40)))[None]
    flow = flow_between(depth, instance, K, cam_a, cam_b, poses, poses)

    # By hand: world point from frame a, projected with frame b's camera.
    points = _backproject(depth.astype(float), cam_a)
    expected = _project(points, cam_b)[0] - np.stack([U, V], -1)
    # Background: direction R_a K^-1 q seen by camera b (rotation only).
    dirs = np.stack([(U - CX) / FX, (V - CY) / FX, np.ones_like(U)], -1) @ cam_a[:3, :3].T
    in_b = dirs @ cam_b[:3, :3]
    at_infinity = np.stack([FX * in_b[..., 0] / in_b[..., 2] + CX, FX * in_b[..., 1] / in_b[..., 2] + CY], -1)
    expected[depth == 0] = (at_infinity - np.stack([U, V], -1))[depth == 0]
    assert np.allclose(flow, expected, atol=1e-3)
    assert np.abs(expected).max() > 5


def test_points_behind_the_other_camera_are_nan():
    depth = np.zeros((H, W), np.float32)
    instance = np.zeros((H, W), np.uint16)
    cam_a = look_at_cam_to_world((0, 0, 0), (0, 1, 0))
    cam_b = look_at_cam_to_world((0, 0, 0), (0, -1, 0))  # turned around
    flow = flow_between(depth, instance, K, cam_a, cam_b, np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
    assert np.all(np.isnan(flow))


def test_clip_flows_layout_and_zero_ends():
    T = 3
    depths = np.full((T, H, W), 4.0, np.float32)
    instances = np.ones((T, H, W), np.uint16)
    cams = np.stack([look_at_cam_to_world((0.1 * t, -4, 0), (0.1 * t, 0, 0)) for t in range(T)])
    poses = np.stack([pose_matrix((0, 0, 0), (0, 0, 0, 1))[None] for _ in range(T)])
    fwd, bwd = clip_flows(depths, instances, K, cams, poses)
    assert fwd.shape == bwd.shape == (T, H, W, 2) and fwd.dtype == bwd.dtype == np.float32
    assert np.all(fwd[-1] == 0) and np.all(bwd[0] == 0)
    # The camera slides right 0.1 m per frame over a static plane 4 m away: dx = -f 0.1 / 4.
    assert np.allclose(fwd[:-1, ..., 0], -FX * 0.1 / 4, atol=1e-4)
    assert np.allclose(bwd[1:, ..., 0], FX * 0.1 / 4, atol=1e-4)
    assert np.allclose(fwd[:-1, ..., 1], 0, atol=1e-4)


def test_nothing_moved_gives_exactly_zero_flow():
    """Static camera; object 1 keeps its pose, object 2 moves 0.3 m along x at 4 m: flow is exactly 0
    (not rounding noise) on object 1, the static world and the background, and f 0.3 / 4 on object 2."""
    cam = look_at_cam_to_world((0.3, -4.0, 0.7), (0.1, 0.0, 0.2))
    depth = np.full((H, W), 4.0, np.float32)
    depth[:, :8] = 0.0  # background
    instance = np.zeros((H, W), np.uint16)
    instance[:, 8:20], instance[:, 20:] = 1, 2
    pose_1 = pose_matrix((0.2, 0.1, 0.3), euler_deg_to_quat((10.0, 20.0, 30.0)))
    before = np.stack([pose_1, pose_matrix((0, 0, 0), (0, 0, 0, 1))])
    after = np.stack([pose_1, pose_matrix((0.3, 0, 0), (0, 0, 0, 1))])
    flow = flow_between(depth, instance, K, cam, cam, before, after)
    assert np.all(flow[:, :20] == 0.0)
    assert np.abs(flow[:, 20:]).max() > 1.0


# ---------------------------------------------------------------- against rendered frames

RW, RH = 96, 72


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample image (H, W, C) at pixel coordinates (x, y) whose centres are at integer + 0.5."""
    fx, fy = x - 0.5, y - 0.5
    x0, y0 = np.floor(fx).astype(int), np.floor(fy).astype(int)
    ax, ay = (fx - x0)[..., None], (fy - y0)[..., None]
    x0c, x1c = np.clip(x0, 0, image.shape[1] - 1), np.clip(x0 + 1, 0, image.shape[1] - 1)
    y0c, y1c = np.clip(y0, 0, image.shape[0] - 1), np.clip(y0 + 1, 0, image.shape[0] - 1)
    img = image.astype(np.float64)
    return ((1 - ay) * ((1 - ax) * img[y0c, x0c] + ax * img[y0c, x1c])
            + ay * ((1 - ax) * img[y1c, x0c] + ax * img[y1c, x1c]))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two frames: a textured ball moving and spinning over a textured floor, the camera moving too."""
    import imageio.v3 as iio

    from hybrid.camera import camera_track
    from hybrid.render import Rasterizer
    from hybrid.scene.spec import Scene
    from hybrid.state import State

    # A smooth colour pattern, so bilinear resampling errors stay small where the flow is right.
    s = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    a, b = np.meshgrid(s, s)
    image = np.stack([128 + 100 * np.sin(a), 128 + 100 * np.sin(b), 128 + 100 * np.cos(a + b)], -1).astype(np.uint8)
    path = tmp_path_factory.mktemp("tex") / "smooth.png"
    iio.imwrite(path, image)
    scene = Scene.model_validate(dict(
        name="flow-test", frames=2, resolution=[RW, RH], camera=dict(fov_deg=50),
        lights=[dict(type="ambient", intensity=1.0)],
        objects=[
            dict(name="floor", shape=dict(type="plane", size=[6, 6], texture_scale=0.5), physics=dict(body="static"),
                 look=dict(color="white", texture=str(path))),
            dict(name="ball", shape=dict(type="sphere", radius=0.6), position=[0, 0, 0.6],
                 look=dict(color="white", texture=str(path))),
        ],
    ))
    names = ("floor", "ball")
    positions = [np.array([[0, 0, 0], [0, 0, 0.6]]), np.array([[0, 0, 0], [0.12, 0.05, 0.65]])]
    quats = [np.array([[0, 0, 0, 1], [0, 0, 0, 1]]), np.array([[0, 0, 0, 1], euler_deg_to_quat((4, -3, 9))])]
    cams = np.stack([look_at_cam_to_world((0.3, -3.0, 1.8), (0, 0, 0.4)), look_at_cam_to_world((0.45, -2.9, 1.85), (0.03, 0, 0.42))])
    with Rasterizer(scene) as rast:
        frames = [
            rast.render(State(frame=k, time_s=0.0, names=names, position=positions[k], quaternion=quats[k],
                              linear_velocity=np.zeros((2, 3)), angular_velocity=np.zeros((2, 3))), cams[k])
            for k in range(2)
        ]
    from hybrid.transforms import pose_matrices

    poses = np.stack([pose_matrices(p, q) for p, q in zip(positions, quats)])
    depths = np.stack([f["depth"] for f in frames])
    instances = np.stack([f["instance"] for f in frames])
    fwd, bwd = clip_flows(depths, instances, camera_track(scene).K, cams, poses)
    return frames, fwd, bwd, cams, poses, camera_track(scene).K


def _interior(instance: np.ndarray) -> np.ndarray:
    """Pixels whose 5 x 5 neighbourhood has one instance id (away from silhouettes)."""
    pad = np.pad(instance, 2, mode="edge")
    same = np.ones(instance.shape, bool)
    for dy in range(5):
        for dx in range(5):
            same &= pad[dy : dy + instance.shape[0], dx : dx + instance.shape[1]] == instance
    return same


def _covisible(frames, fwd, cams, poses, K):
    """Frame-0 pixels whose surface point is visible at its target in frame 1, away from silhouettes."""
    f0, f1 = frames
    u, v = np.meshgrid(np.arange(RW) + 0.5, np.arange(RH) + 0.5)
    x, y = u + fwd[0, ..., 0], v + fwd[0, ..., 1]
    inside = (x > 1) & (x < RW - 1) & (y > 1) & (y < RH - 1)
    xi, yi = np.clip(x.astype(int), 0, RW - 1), np.clip(y.astype(int), 0, RH - 1)
    inst0 = f0["instance"]
    same = (f1["instance"][yi, xi] == inst0) & _interior(f1["instance"])[yi, xi]
    # Depth of the moved point in camera 1, by hand, against what frame 1 saw there.
    cam_pts = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) * f0["depth"][..., None]
    world = cam_pts @ cams[0][:3, :3].T + cams[0][:3, 3]
    ids = inst0.astype(int) - 1
    motion = poses[1] @ np.linalg.inv(poses[0])
    moved = np.einsum("hwij,hwj->hwi", motion[ids][..., :3, :3], world) + motion[ids][..., :3, 3]
    z1 = ((moved - cams[1][:3, 3]) @ cams[1][:3, :3])[..., 2]
    depth_ok = np.abs(z1 - _bilinear(f1["depth"][..., None], x, y)[..., 0]) < 0.01 * z1
    return (inst0 > 0) & _interior(inst0) & inside & same & depth_ok, x, y


def test_warp_next_frame_back_with_flow(rendered):
    frames, fwd, _, cams, poses, K = rendered
    mask, x, y = _covisible(frames, fwd, cams, poses, K)
    assert mask.sum() > 1500
    assert (frames[0]["instance"][mask] == 2).sum() > 200  # the moving ball is part of the test
    warped = _bilinear(frames[1]["albedo"], x, y)
    u, v = np.meshgrid(np.arange(RW) + 0.5, np.arange(RH) + 0.5)
    unwarped = _bilinear(frames[1]["albedo"], u, v)
    # Per instance, so the ball's own motion cannot hide behind the floor's pixel count.
    for ident in (1, 2):
        sel = mask & (frames[0]["instance"] == ident)
        err = np.abs(warped - frames[0]["albedo"])[sel].mean()
        still = np.abs(unwarped - frames[0]["albedo"])[sel].mean()  # without the flow: far worse
        assert err < 2.0, (ident, err)
        assert err < 0.2 * still, (ident, err, still)


def test_forward_backward_consistency(rendered):
    frames, fwd, bwd, cams, poses, K = rendered
    mask, x, y = _covisible(frames, fwd, cams, poses, K)
    back = _bilinear(bwd[1], x, y)
    assert np.abs(back[mask] + fwd[0][mask]).max() < 0.05
    assert np.abs(fwd[0][mask]).max() > 3  # a real motion
