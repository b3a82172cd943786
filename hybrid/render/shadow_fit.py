"""The directional lights' shadow cameras, fitted to what can cast a visible shadow.

pyrender points a directional light's orthographic shadow camera at the whole scene:
a square as wide as twice the scene's bounding-box diagonal. A scene standing on a
30 m floor then spreads its 2048 x 2048 shadow map over 85 m, about 4 cm per texel:
contact shadows are blurred over several centimetres, and the percentage-closer
filter's taps, two texels apart, reach far enough down a floor lit at a low angle
that the floor shadows itself in stripes ("shadow acne") that crawl as the camera
moves.

``fitted_shadow_camera`` fits the square to the shadow casters instead: every mesh
that is not an infinitely thin plane (floors and walls drawn as planes receive
shadows; they are drawn into the map but not fitted to), together with where their
shadows land, the casters' bounding-box corners carried along the light to the
lowest point of the scene. Receivers outside the square are lit (``beauty.frag``),
which is exact, since nothing fitted casts a shadow there. For a typical tabletop
clip this is 10 to 20 times finer texels.

Stable from frame to frame: the square's side is rounded up to a power of 2^(1/4)
and its centre snapped to whole texels of the light's fixed axes, so while objects
move the texels stay put on the world and shadow edges do not shimmer; the side
changes only when the casters' spread crosses a step.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

SIZE_STEP = 2.0**0.25  # the side is a power of this (metres), so it changes in few, small steps
MARGIN_TEXELS = 4  # kept free around the fitted region: the filter's taps reach 2 texels
FLAT = 1e-6  # a mesh thinner than this (metres) in some axis is a plane: a receiver, not fitted to
MIN_DESCENT = 0.05  # light this close to horizontal (|direction z| below it) keeps pyrender's own fit


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(8, 3) corners of the box [lo, hi]."""
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def world_boxes(scene) -> list[tuple[np.ndarray, np.ndarray]]:
    """World axis-aligned (lo, hi) of every visible mesh node of a pyrender scene at its current pose."""
    boxes = []
    for node in scene.mesh_nodes:
        if not node.mesh.is_visible:
            continue
        pose = scene.get_pose(node)
        lo, hi = node.mesh.bounds
        corners = _corners(lo, hi) @ pose[:3, :3].T + pose[:3, 3]
        boxes.append((corners.min(0), corners.max(0)))
    return boxes


def light_axes(direction: np.ndarray) -> np.ndarray:
    """(3, 3) rows x, y, z: the shadow camera's axes for light travelling along `direction` (z = -direction).

    Depends on the direction only, so the texel grid is fixed on the world while it is.
    """
    z = -np.asarray(direction, dtype=np.float64)
    z /= np.linalg.norm(z)
    hint = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.99 else np.array([0.0, 1.0, 0.0])
    x = np.cross(hint, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def fitted_shadow_camera(
    boxes: list[tuple[np.ndarray, np.ndarray]], direction: np.ndarray, texels: int
) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(V, P) world-to-light view and orthographic projection (OpenGL conventions), or None for pyrender's fit.

    boxes: world (lo, hi) of the scene's meshes (``world_boxes``); direction: the way the
    light travels (world); texels: the shadow map's side. None when nothing casts a shadow
    or the light comes from (nearly) the horizon or below, where shadows run off to
    infinity and the whole-scene fit is the honest one.
    """
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    if not boxes or d[2] > -MIN_DESCENT:
        return None
    casters = [(lo, hi) for lo, hi in boxes if np.min(hi - lo) > FLAT]
    if not casters:
        return None
    ground = min(lo[2] for lo, _ in boxes)
    points = np.concatenate([_corners(lo, hi) for lo, hi in casters])
    landing = points + d * ((ground - points[:, 2]) / d[2])[:, None]  # each corner's shadow on the lowest level
    axes = light_axes(d)
    uv = np.concatenate([points, landing]) @ axes[:2].T
    spread = float(np.max(uv.max(0) - uv.min(0)))
    # Side: the spread plus the margin, rounded up to a power of SIZE_STEP.
    side = SIZE_STEP ** np.ceil(np.log(max(spread, 1e-3) * texels / (texels - 2 * MARGIN_TEXELS)) / np.log(SIZE_STEP))
    texel = side / texels
    centre = np.round((uv.max(0) + uv.min(0)) / 2 / texel) * texel  # snapped to the texel grid
    # Depth: everything, planes too, lies between the near and far planes.
    every = np.concatenate([_corners(lo, hi) for lo, hi in boxes])
    w = every @ axes[2]
    pad = 0.01 * max(float(w.max() - w.min()), side) + 1e-3
    eye = centre[0] * axes[0] + centre[1] * axes[1] + (w.max() + pad) * axes[2]
    near, far = pad / 2, float(w.max() - w.min()) + 2 * pad
    pose = np.eye(4)
    pose[:3, :3] = axes.T  # columns: the camera's x, y, z in the world
    pose[:3, 3] = eye
    half = side / 2
    projection = np.array(
        [
            [1 / half, 0, 0, 0],
            [0, 1 / half, 0, 0],
            [0, 0, -2 / (far - near), -(far + near) / (far - near)],
            [0, 0, 0, 1],
        ]
    )
    return np.linalg.inv(pose), projection
