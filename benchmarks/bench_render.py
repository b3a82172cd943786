"""Rasterizer cost: every per-frame buffer vs one plain pyrender colour pass.

Scene: 256 x 256, a floor plane and eight objects of mixed shapes, ambient light
plus a directional light with shadows, camera orbiting. Ours: ``Rasterizer.render``
(rgb, depth, instance, normal, albedo) plus that frame's flow_fwd and flow_bwd.
Baseline: ``pyrender.Renderer.render`` of the same pyrender scene with the same
flags as our rgb pass (what ``pyrender.OffscreenRenderer.render`` runs), in the
same context. Also against that baseline: the HDR beauty pass alone
(``Rasterizer.render_hdr``: shadow maps, the float forward pass into the 4x RGBA16F
target, resolve, float32 readback) and the rgb buffer made from it
(``Rasterizer.render_rgb``: the same plus the 1/2.2 display encoding). All run in
this process, in rotating order, and the medians are compared.

Run: python benchmarks/bench_render.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hybrid.camera import camera_track  # noqa: E402
from hybrid.render import Rasterizer  # noqa: E402
from hybrid.render.flow import flow_between  # noqa: E402
from hybrid.render.gl import pyrender  # noqa: E402
from hybrid.scene.spec import Scene  # noqa: E402
from hybrid.state import State  # noqa: E402
from hybrid.transforms import euler_deg_to_quat, pose_matrices  # noqa: E402

TARGET_RATIO = 3.0


def bench_scene() -> Scene:
    objects = [dict(name="floor", shape=dict(type="plane", size=[8, 8]), physics=dict(body="static"), look=dict(color="sand"))]
    shapes = [
        dict(type="sphere", radius=0.35),
        dict(type="box", size=[0.5, 0.4, 0.3]),
        dict(type="cylinder", radius=0.2, length=0.6),
        dict(type="capsule", radius=0.15, length=0.4),
        dict(type="sphere", radius=0.25),
        dict(type="box", size=[0.3, 0.3, 0.6]),
        dict(type="cylinder", radius=0.3, length=0.2),
        dict(type="capsule", radius=0.2, length=0.3),
    ]
    colors = ["red", "green", "blue", "yellow", "orange", "purple", "cyan", "magenta"]
    for i, (shape, color) in enumerate(zip(shapes, colors)):
        angle = 2 * np.pi * i / len(shapes)
        objects.append(
            dict(name=f"obj{i}", shape=shape, position=[1.2 * np.cos(angle), 1.2 * np.sin(angle), 0.5],
                 look=dict(color=color, roughness=0.5))
        )
    return Scene.model_validate(
        dict(
            name="bench", fps=24, frames=48, resolution=[256, 256],
            camera=dict(motion="orbit", position=[4, 0, 2.5], look_at=[0, 0, 0.3], orbit_deg_per_s=30),
            lights=[dict(type="ambient", intensity=0.3), dict(type="directional", direction=[-0.4, 0.3, -1], shadows=True)],
            objects=objects,
        )
    )


def state_at(scene: Scene, frame: int) -> State:
    """Objects bobbing and spinning: every object moves between frames."""
    n = len(scene.objects)
    pos = np.array([obj.position for obj in scene.objects], dtype=np.float64)
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
    for i in range(1, n):
        pos[i, 2] += 0.2 * np.sin(0.3 * frame + i)
        quat[i] = euler_deg_to_quat((7.0 * frame, 3.0 * frame * i, 11.0 * frame))
    zeros = np.zeros((n, 3))
    return State(frame=frame, time_s=frame / scene.fps, names=tuple(o.name for o in scene.objects),
                 position=pos, quaternion=quat, linear_velocity=zeros, angular_velocity=zeros)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    scene = bench_scene()
    track = camera_track(scene)
    states = [state_at(scene, k) for k in range(scene.frame_count)]
    poses = [pose_matrices(s.position, s.quaternion) for s in states]
    ours_ms, base_ms, hdr_ms, rgb_ms = [], [], [], []
    with Rasterizer(scene) as rast:

        def ours(k: int) -> None:
            buffers = rast.render(states[k], track.cam_to_world[k])
            args_ = (buffers["depth"], buffers["instance"], track.K, track.cam_to_world[k])
            flow_between(*args_, track.cam_to_world[k + 1], poses[k], poses[k + 1])
            flow_between(*args_, track.cam_to_world[k - 1], poses[k], poses[k - 1])

        def baseline(k: int) -> None:
            rast.make_current()
            rast.set_frame(states[k], track.cam_to_world[k])
            rast.renderer.render(rast.pyrender_scene, rast.rgb_flags | pyrender.RenderFlags.OFFSCREEN)

        def hdr(k: int) -> None:
            rast.render_hdr(states[k], track.cam_to_world[k])

        def rgb(k: int) -> None:
            rast.render_rgb(states[k], track.cam_to_world[k])

        runs = [(ours, ours_ms), (baseline, base_ms), (hdr, hdr_ms), (rgb, rgb_ms)]
        for k in (1, 2):  # warm up: shader compilation, uploads
            for fn, _ in runs:
                fn(k)
        for r in range(args.repeats):
            k = 1 + r % (scene.frame_count - 2)
            shift = r % len(runs)  # each pass goes first, second, ... equally often
            for fn, out in runs[shift:] + runs[:shift]:
                t0 = time.perf_counter()
                fn(k)
                out.append((time.perf_counter() - t0) * 1e3)
    ours_med, base_med = statistics.median(ours_ms), statistics.median(base_ms)
    ratio = ours_med / base_med
    print(
        f"all buffers {ours_med:.1f} ms vs plain colour pass {base_med:.1f} ms: "
        f"ratio {ratio:.2f}x (target <= {TARGET_RATIO:g}x)"
    )
    hdr_med, rgb_med = statistics.median(hdr_ms), statistics.median(rgb_ms)
    for what, med in (("HDR beauty pass (float32 radiance)", hdr_med), ("rgb from the HDR pass (encoded)", rgb_med)):
        print(f"{what} {med:.1f} ms vs plain colour pass {base_med:.1f} ms: ratio {med / base_med:.2f}x")


if __name__ == "__main__":
    main()
