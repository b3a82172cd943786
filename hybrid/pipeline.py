"""One scene to one clip: simulate -> camera -> rasterise -> flow -> metadata.

Each stage takes the previous stage's plain output and nothing else: the
rasteriser sees States and camera matrices, never pybullet; the writer sees a
Clip, never the renderer.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from hybrid.camera import camera_track
from hybrid.io.clip import Clip
from hybrid.io.metadata import build_metadata
from hybrid.render import Rasterizer
from hybrid.render.flow import clip_flows
from hybrid.scene.spec import Scene
from hybrid.state import State
from hybrid.transforms import pose_matrices
from hybrid.world import World

Progress = Optional[Callable[[str, int, int], None]]  # (stage, done, total)


def simulate(scene: Scene, progress: Progress = None) -> list[State]:
    """Run the physics for the whole clip: one State per frame."""
    total = scene.frame_count
    done = 0

    def tick(*_args) -> None:
        nonlocal done
        done += 1
        progress("simulate", done, total)  # type: ignore[misc]

    with World(scene, collect_contacts=scene.physics.record_contacts) as world:
        return world.run(progress=tick if progress is not None else None)


def rasterize(
    scene: Scene,
    states: list[State],
    cam_to_world: np.ndarray,
    progress: Progress = None,
    *,
    hdr: bool = False,
    beauty: bool = True,
) -> dict[str, np.ndarray]:
    """Draw every frame's buffers and stack them on a leading T axis.

    With ``hdr`` the beauty frames come as ``hdr``, float32 (T, H, W, 3) linear
    radiance for a post chain, instead of the display-encoded ``rgb``; with
    ``beauty=False`` there is no beauty frame at all (a caller that renders its own).
    """
    frames: dict[str, list[np.ndarray]] = {}
    with Rasterizer(scene) as raster:
        for t, state in enumerate(states):
            for name, arr in raster.render(state, cam_to_world[t], hdr=hdr, beauty=beauty).items():
                frames.setdefault(name, []).append(arr)
            if progress is not None:
                progress("render", t + 1, len(states))
    return {name: np.stack(arrs) for name, arrs in frames.items()}


def object_poses(states: list[State]) -> np.ndarray:
    """(T, N, 4, 4) shape-frame pose of every object in every frame."""
    return np.stack([pose_matrices(s.position, s.quaternion) for s in states])


def render_clip(scene: Scene, progress: Progress = None) -> Clip:
    """Simulate and rasterise a scene into a Clip (all buffers of the contract plus metadata)."""
    states = simulate(scene, progress)
    track = camera_track(scene)
    buffers = rasterize(scene, states, track.cam_to_world, progress)
    flow_fwd, flow_bwd = clip_flows(buffers["depth"], buffers["instance"], track.K, track.cam_to_world, object_poses(states))
    buffers["flow_fwd"], buffers["flow_bwd"] = flow_fwd, flow_bwd
    return Clip(buffers=buffers, metadata=build_metadata(scene, states, track.K, track.cam_to_world))
