"""Beauty sub-frames for motion blur: the HDR beauty pass at fractional frame times.

Motion blur averages what the shutter saw while it was open, so each output frame
needs several beauty renders at times around the frame's own. The simulation
records a State per frame; between two frames each object's pose is interpolated
(position linearly, rotation by slerp) and the camera is evaluated at the exact
fractional time. Only the beauty pass is rendered, as linear float radiance (the
average a shutter integrates is one of light, and highlights above 1 must reach the
rest of the chain): depth, instance, normal, albedo and flow stay single renders at
the frame time, exact as ever. Across a break, sub-frames after the earlier frame
show the fragments (``interpolate_state``).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from hybrid.camera import MOTIONS
from hybrid.scene.spec import Scene
from hybrid.state import State
from hybrid.transforms import slerp


def interpolate_state(states: list[State], t: float) -> State:
    """The objects' poses at fractional frame index `t` (clamped to the clip), between recorded frames;
    the fields of the nearer recorded frame."""
    t = float(np.clip(t, 0.0, len(states) - 1))
    i = min(int(np.floor(t)), len(states) - 2) if len(states) > 1 else 0
    u = t - i
    a = states[i]
    if len(states) == 1 or u == 0.0:
        return a
    b = states[i + 1]
    position = (1.0 - u) * a.position + u * b.position
    quaternion = np.array([slerp(qa, qb, u) for qa, qb in zip(a.quaternion, b.quaternion)]).reshape(-1, 4)
    return State(
        frame=a.frame,
        time_s=(1.0 - u) * a.time_s + u * b.time_s,
        names=a.names,
        position=position,
        quaternion=quaternion,
        linear_velocity=(1.0 - u) * a.linear_velocity + u * b.linear_velocity,
        angular_velocity=(1.0 - u) * a.angular_velocity + u * b.angular_velocity,
        # Fields are not interpolated (a grid or a particle set has no pose to blend):
        # a sub-frame shows the nearer recorded frame's.
        fields=a.fields if u < 0.5 else b.fields,
        # Between a break's frames the fragments are drawn (the later frame's roster): their
        # rows at a are the parent's pose, so they come out of the object as the shutter runs.
        present=b.present,
        breaks=b.breaks,
    )


def camera_at(scene: Scene, frame_times: np.ndarray) -> np.ndarray:
    """(S, 4, 4) OpenCV cam_to_world at fractional frame indices (video time = index / fps)."""
    cam = scene.camera
    return np.asarray(MOTIONS[cam.motion](cam, np.asarray(frame_times, dtype=np.float64) / scene.fps))


def iter_beauty_subframes(
    scene: Scene, states: list[State], offsets: np.ndarray, beauty="raster"
) -> Iterator[np.ndarray]:
    """For every frame k in turn, float32 (S, H, W, 3): the beauty pass's linear radiance at k + offsets[s].

    `offsets` are in frame intervals (``hybrid.render.post.motion_blur.subframe_schedule``).
    One frame's sub-frames at a time, so a clip never holds T x S float frames.
    `beauty` names the back end that draws them, or is a ``BeautyChoice`` (``hybrid.render.backends``).
    """
    from hybrid.render.backends import open_beauty

    offsets = np.asarray(offsets, dtype=np.float64)
    with open_beauty(beauty, scene) as backend:
        for k in range(len(states)):
            times = k + offsets
            out = np.empty((len(offsets), scene.height, scene.width, 3), dtype=np.float32)
            for s, (t, c2w) in enumerate(zip(times, camera_at(scene, times))):
                out[s] = backend.render_hdr(interpolate_state(states, t), c2w)
            yield out


def render_beauty_subframes(scene: Scene, states: list[State], offsets: np.ndarray) -> np.ndarray:
    """float32 (T, S, H, W, 3): ``iter_beauty_subframes`` for the whole clip, stacked."""
    return np.stack(list(iter_beauty_subframes(scene, states, offsets)))
