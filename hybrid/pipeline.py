"""One scene to one clip: simulate -> camera -> rasterise -> flow -> post -> metadata.

Each stage takes the previous stage's plain output and nothing else: the
rasteriser sees States and camera matrices, never pybullet; the writer sees a
Clip, never the renderer.

This is the one render path: ``hybrid render`` (``render_clip``) and the dataset
writer (``hybrid.data.generate``, which draws a scene from a recipe first) both
go through ``render_buffers``, so a scene's ``post:`` chain, motion blur and the
choice of beauty back end (``hybrid.render.backends``) work the same for both.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from hybrid.camera import CameraTrack, camera_track
from hybrid.io.clip import Clip
from hybrid.io.metadata import build_metadata
from hybrid.render import Rasterizer
from hybrid.render.backends import DEFAULT_BEAUTY, Beauty, beauty_name, beauty_options, open_beauty
from hybrid.render.beauty import encode_display
from hybrid.render.flow import clip_flows
from hybrid.scene.spec import Scene
from hybrid.state import State
from hybrid.transforms import pose_matrices
from hybrid.world import World

Progress = Optional[Callable[[str, int, int], None]]  # (stage, done, total)
Lap = Optional[Callable[[str], None]]  # called after each stage with its name: "raster", "flow", "post"


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


def break_carriers(scene: Scene, states: list[State]) -> dict[int, dict]:
    """For ``clip_flows``: per frame t before a break, the ids of what breaks by frame t + 1 and the
    function giving, for points of it, the id of the fragment that carries them (``breakables.carried_by``)."""
    if not states or not states[-1].breaks:
        return {}
    from hybrid.physics.breakables import carried_by
    from hybrid.roster import Roster

    roster = Roster.from_scene(scene)
    out: dict[int, dict] = {}
    for t in range(len(states) - 1):
        later = states[t + 1]
        new = [e for e in later.breaks if e.frame == later.frame]
        here = states[t].present_mask
        for event in new:
            if not here[event.parent]:
                continue  # made and broken within the frame: its root parent's pixels follow the chain

            def carrier(points, index=event.parent, breaks=later.breaks, frame=later.frame):
                return carried_by(scene, roster, breaks, index, points, frame) + 1

            out.setdefault(t, {})[event.parent + 1] = carrier
    return out


def render_buffers(
    scene: Scene,
    states: list[State],
    track: CameraTrack,
    progress: Progress = None,
    *,
    beauty: Beauty = DEFAULT_BEAUTY,
    grain_key: Sequence[int] = (),
    lap: Lap = None,
    keep_raster: bool = False,
    keep_hdr: bool = False,
) -> dict[str, np.ndarray]:
    """Every buffer of the clip (registry groups core and flow, plus fields when the states carry them).

    The G-buffer (depth, instance, normal, albedo, field buffers) always comes from
    the rasteriser; the beauty frame from the back end `beauty`. With a ``post:``
    chain in the scene, the beauty frames stay linear HDR radiance until the chain
    makes ``rgb`` from them (a chain starting with motion_blur renders its own
    sub-frames); without one they are encoded for display directly.
    `grain_key`: leading entries of the film-grain seed, which ends with the frame index.
    `keep_raster`: when another back end draws rgb, also keep the rasteriser's beauty,
    made the same way (same chain, same grain), as ``rgb_raster``.
    `keep_hdr`: also keep the beauty back end's linear radiance, before the post chain, as ``radiance``.
    """
    chain = scene.post
    effects = chain.root if chain is not None else ()
    blurred = bool(effects) and effects[0].type == "motion_blur"
    beauty_options(beauty)  # bad settings fail before any frame is drawn
    if keep_hdr and blurred:
        raise ValueError(
            "the radiance buffer (--hdr) holds one beauty frame per video frame, and this scene's post chain starts "
            "with motion_blur, which renders its own sub-frames instead: drop --hdr, or the motion_blur effect"
        )
    by_raster = beauty_name(beauty) == DEFAULT_BEAUTY
    keep_raster = keep_raster and not by_raster
    buffers = rasterize(
        scene, states, track.cam_to_world, progress,
        hdr=chain is not None or keep_raster or keep_hdr, beauty=(by_raster or keep_raster) and not blurred,
    )
    raster_hdr = buffers.pop("hdr", None) if keep_raster else None
    if not by_raster and not blurred:
        with open_beauty(beauty, scene) as backend:
            buffers["hdr"] = np.stack([backend.render_hdr(s, c) for s, c in zip(states, track.cam_to_world)])
    if lap is not None:
        lap("raster")
    buffers["flow_fwd"], buffers["flow_bwd"] = clip_flows(
        buffers["depth"], buffers["instance"], track.K, track.cam_to_world, object_poses(states),
        break_carriers(scene, states),
    )
    if lap is not None:
        lap("flow")
    if keep_hdr:
        buffers["radiance"] = np.ascontiguousarray(buffers["hdr"], dtype=np.float32)
    made = [("rgb", buffers.pop("hdr", None), beauty)] + ([("rgb_raster", raster_hdr, DEFAULT_BEAUTY)] if keep_raster else [])
    for name, hdr, drawn_by in made:
        if chain is not None:
            buffers[name] = post_process(scene, states, hdr, buffers["depth"], track.K, grain_key, drawn_by)
        elif hdr is not None:
            buffers[name] = np.stack([encode_display(frame) for frame in hdr])
    if lap is not None:
        lap("post")
    return buffers


def post_process(
    scene: Scene,
    states: list[State],
    hdr: Optional[np.ndarray],
    depth: np.ndarray,
    K: np.ndarray,
    grain_key: Sequence[int] = (),
    beauty: Beauty = DEFAULT_BEAUTY,
) -> np.ndarray:
    """The scene's post chain on every beauty frame -> uint8 (T, H, W, 3) rgb; the other buffers stay as they are.

    hdr: float32 (T, H, W, 3), the beauty pass's linear radiance, unclamped, so
    exposure, bloom and tone mapping act on highlights brighter than white. depth:
    float32 (T, H, W) metres (depth of field). A chain that starts with motion_blur
    gets HDR beauty sub-frames rendered around each frame's time instead (``hdr`` may
    then be None). Grain is seeded per (*grain_key, frame), so a clip's frames stay
    reproducible one by one.
    """
    from hybrid.render.post import apply_chain
    from hybrid.render.post.motion_blur import subframe_schedule

    chain = scene.post
    effects = chain.root
    frames = hdr
    if effects and effects[0].type == "motion_blur":
        from hybrid.render.subframes import iter_beauty_subframes

        offsets, _ = subframe_schedule(effects[0])
        frames = iter_beauty_subframes(scene, states, offsets, beauty)
    if frames is None:
        raise ValueError("post_process needs the hdr beauty frames unless the chain starts with motion_blur")
    out = np.empty(depth.shape + (3,), dtype=np.uint8)
    for k, frame in enumerate(frames):
        out[k] = apply_chain(frame, chain, depth=depth[k], K=K, rng=np.random.default_rng([*grain_key, k]))
    return out


def render_clip(scene: Scene, progress: Progress = None, *, beauty: Beauty = DEFAULT_BEAUTY, hdr: bool = False) -> Clip:
    """Simulate and render a scene into a Clip (every buffer of the contract plus metadata; with `hdr` also ``radiance``)."""
    states = simulate(scene, progress)
    track = camera_track(scene)
    buffers = render_buffers(scene, states, track, progress, beauty=beauty, grain_key=(scene.seed,), keep_hdr=hdr)
    return Clip(buffers=buffers, metadata=build_metadata(scene, states, track.K, track.cam_to_world, buffers))
