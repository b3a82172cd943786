"""Exact optical flow from geometry: where each pixel's surface point goes in another frame.

Not estimated from images: every pixel of frame a is lifted to 3D with its z-depth,
carried rigidly by the motion of the object it belongs to (its instance id), and
projected into frame b with that frame's camera. Pixel convention as in
``hybrid.camera``: pixel (row r, column c) has its centre at (u, v) = (c + 0.5, r + 0.5).

Cases per pixel of frame a:
- instance i >= 1: the point moves with object i, X_b = P_b[i-1] P_a[i-1]^-1 X_a;
- instance 0 with depth > 0: a static world point (scenery without an instance);
- depth 0 (background): a direction at infinity; only the camera's rotation moves it.

A point behind camera b (z <= 0 in b's camera axes) has no image there: its flow is
NaN. Points that land outside the image keep their (finite) flow.

Across a break (``hybrid.roster``) the object of frame a no longer exists in frame b:
each of its pixels moves with the fragment that holds its material
(``carried_instances``, which the pipeline passes to ``clip_flows`` as
``carriers``); a fragment's row in frame a is its parent's pose, so the motion
P_b[fragment] P_a[fragment]^-1 takes the point exactly to where that material is.
"""

from __future__ import annotations

import numpy as np


def flow_between(
    depth_a: np.ndarray,
    instance_a: np.ndarray,
    K: np.ndarray,
    cam_to_world_a: np.ndarray,
    cam_to_world_b: np.ndarray,
    object_poses_a: np.ndarray,
    object_poses_b: np.ndarray,
) -> np.ndarray:
    """(H, W, 2) float32 pixel offsets (dx, dy) taking frame a's pixels to their surface points in frame b.

    depth_a: (H, W) z-depth in metres, 0 on background. instance_a: (H, W) ids, 0 =
    no object. K: (3, 3). cam_to_world_a/b: (4, 4) OpenCV axes. object_poses_a/b:
    (N, 4, 4) each object's shape-frame pose (``transforms.pose_matrices``).
    """
    depth = np.asarray(depth_a, dtype=np.float32)
    instance = np.asarray(instance_a).astype(np.intp)
    K = np.asarray(K, dtype=np.float64)
    height, width = depth.shape
    poses_a = np.asarray(object_poses_a, dtype=np.float64).reshape(-1, 4, 4)
    poses_b = np.asarray(object_poses_b, dtype=np.float64).reshape(-1, 4, 4)
    if instance.size and instance.max() > len(poses_a):
        raise ValueError(f"instance id {int(instance.max())} has no pose: only {len(poses_a)} objects given")

    # One camera-a -> camera-b transform per instance id (0: the static world). What did
    # not move at all (the same camera, an object with the same pose) gets the identity
    # exactly, not inv(C) C with its rounding, so its flow is exactly 0 rather than ~1e-14
    # px: exact zeros are the truth there, and compress.
    cam_a = np.asarray(cam_to_world_a, dtype=np.float64)
    cam_b = np.asarray(cam_to_world_b, dtype=np.float64)
    cam_a_to_b = np.eye(4) if np.array_equal(cam_a, cam_b) else np.linalg.inv(cam_b) @ cam_a
    still = np.concatenate([[True], (poses_a == poses_b).all(axis=(1, 2))])  # (N + 1,)
    motion = np.concatenate([np.eye(4)[None], poses_b @ np.linalg.inv(poses_a)])
    a_to_b = np.linalg.inv(cam_b) @ motion @ cam_a  # (N + 1, 4, 4)
    a_to_b[still] = cam_a_to_b

    # With X_a = d K^-1 q, q = (u, v, 1) (z-depth d; K's last row is (0, 0, 1)), the
    # homogeneous image point in b is p = d H q + e, H = K R K^-1, e = K t: twelve numbers
    # per instance gathered per pixel instead of a 4x4 product per pixel. Writing
    # H = I + D, the flow is ((p_x - u p_z) / p_z, (p_y - v p_z) / p_z) with numerators
    # d (Dq_x - u Dq_z) + e_x - u e_z that vanish with the motion instead of cancelling
    # two large numbers, so float32 keeps small flows precise. Background pixels are
    # directions at infinity: d = 1 and no e.
    homography = K @ a_to_b[:, :3, :3] @ np.linalg.inv(K)  # (N + 1, 3, 3)
    delta = homography - np.eye(3)
    delta[(a_to_b[:, :3, :3] == np.eye(3)).all(axis=(1, 2))] = 0.0  # K I K^-1 rounds too
    shift = a_to_b[:, :3, 3] @ K.T  # (N + 1, 3)
    table = np.concatenate([delta.reshape(-1, 9), shift], axis=1).T.astype(np.float32)  # (12, N + 1)
    g = table[:, instance]  # (12, H, W)

    hit = depth > 0
    d = np.where(hit, depth, np.float32(1.0))
    u = np.arange(width, dtype=np.float32)[None, :] + np.float32(0.5)
    v = np.arange(height, dtype=np.float32)[:, None] + np.float32(0.5)
    dq_x = g[0] * u + g[1] * v + g[2]
    dq_y = g[3] * u + g[4] * v + g[5]
    dq_z = g[6] * u + g[7] * v + g[8]
    e_x = np.where(hit, g[9], 0)
    e_y = np.where(hit, g[10], 0)
    e_z = np.where(hit, g[11], 0)
    p_z = d * (1 + dq_z) + e_z
    num_x = d * (dq_x - u * dq_z) + (e_x - u * e_z)
    num_y = d * (dq_y - v * dq_z) + (e_y - v * e_z)

    ahead = p_z > 0
    inv_z = np.where(ahead, 1 / np.where(ahead, p_z, 1), np.float32(np.nan))
    flow = np.empty((height, width, 2), dtype=np.float32)
    flow[..., 0] = num_x * inv_z
    flow[..., 1] = num_y * inv_z
    return flow


def carried_instances(
    depth: np.ndarray, instance: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray, object_poses: np.ndarray,
    carriers: dict,
) -> np.ndarray:
    """`instance` with each pixel of an object in `carriers` given the id of the object that carries its
    material into the next frame: ``carriers[id](points)`` takes (N, 3) points in that object's frame
    and returns their carriers' ids."""
    out = np.asarray(instance).copy()
    K = np.asarray(K, dtype=np.float64)
    for ident, carrier in carriers.items():
        rows, cols = np.nonzero((out == ident) & (np.asarray(depth) > 0))
        if not len(rows):
            continue
        d = np.asarray(depth, dtype=np.float64)[rows, cols]
        cam = np.stack([(cols + 0.5 - K[0, 2]) / K[0, 0] * d, (rows + 0.5 - K[1, 2]) / K[1, 1] * d, d], axis=1)
        world = cam @ np.asarray(cam_to_world, dtype=np.float64)[:3, :3].T + np.asarray(cam_to_world)[:3, 3]
        pose = np.asarray(object_poses, dtype=np.float64)[ident - 1]
        local = (world - pose[:3, 3]) @ pose[:3, :3]
        out[rows, cols] = np.asarray(carrier(local), dtype=out.dtype)
    return out


def clip_flows(
    depths: np.ndarray,
    instances: np.ndarray,
    K: np.ndarray,
    cam_to_world: np.ndarray,
    object_poses: np.ndarray,
    carriers: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flow of a whole clip, both (T, H, W, 2) float32.

    depths (T, H, W), instances (T, H, W), K (3, 3), cam_to_world (T, 4, 4),
    object_poses (T, N, 4, 4). flow_fwd[t] takes frame t to t + 1 (0 in the last
    frame); flow_bwd[t] takes frame t to t - 1 (0 in the first). `carriers[t]`
    (optional, per frame t) maps the ids of objects that break between frames t and
    t + 1 to their carriers (``carried_instances``).
    """
    depths = np.asarray(depths)
    T = depths.shape[0]
    fwd = np.zeros(depths.shape + (2,), dtype=np.float32)
    bwd = np.zeros_like(fwd)
    for t in range(T):
        if t + 1 < T:
            moving = instances[t]
            if carriers and carriers.get(t):
                moving = carried_instances(depths[t], moving, K, cam_to_world[t], object_poses[t], carriers[t])
            fwd[t] = flow_between(
                depths[t], moving, K, cam_to_world[t], cam_to_world[t + 1], object_poses[t], object_poses[t + 1]
            )
        if t > 0:
            bwd[t] = flow_between(
                depths[t], instances[t], K, cam_to_world[t], cam_to_world[t - 1], object_poses[t], object_poses[t - 1]
            )
    return fwd, bwd
