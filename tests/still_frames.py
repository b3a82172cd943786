"""Helpers for tests that check a rendered still against geometry: one frame, and its pixels back in the world."""

import numpy as np

from hybrid.camera import camera_track
from hybrid.pipeline import rasterize, simulate
from hybrid.scene.spec import Scene


def render_still(spec: dict) -> dict:
    """The raster buffers of a one-frame scene (a Scene dict), with its intrinsics "K" and camera pose "c2w"."""
    scene = Scene.model_validate(spec)
    states = simulate(scene)
    track = camera_track(scene)
    return {**rasterize(scene, states, track.cam_to_world), "K": track.K, "c2w": track.cam_to_world[0]}


def surface_points(b: dict, instance: int):
    """(rows, cols, world (3, N), linear brightness (N,)) of the pixels showing `instance`, from depth and the camera."""
    depth = b["depth"][0]
    v, u = np.nonzero(b["instance"][0] == instance)
    z = depth[v, u]
    K, c2w = b["K"], b["c2w"]
    cam = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * z, (v + 0.5 - K[1, 2]) / K[1, 1] * z, z, np.ones_like(z)])
    world = (c2w @ cam)[:3]
    lum = b["rgb"][0][v, u].astype(np.float64).mean(axis=1) / 255.0
    return v, u, world, lum**2.2  # back to linear light
