"""Cycles beauty frames against the rasteriser's: time per frame and the quality each sample count reaches.

Scene: ``bench_render.bench_scene`` (a floor and eight objects of mixed shapes,
ambient plus a directional light with shadows) at 256 x 256, one frame. Baseline:
``Rasterizer.render_hdr`` of the same frame in the same process. Cycles on the CPU at
16, 64 and 256 samples per pixel, each without and with the OIDN denoiser; quality
is the PSNR of the display-encoded frame (gamma 1/2.2, clipped to 0..1) against a
2048-sample Cycles reference of the same frame, denoised. Medians over --repeats,
configurations in rotating order. OIDN runs at the default quality (balanced, fast
prefilter); the reference uses high.

Then the case the dataset writer cares about: a 24-frame 128 x 128 clip of the
MOVi-A recipe with ``beauty: {type: cycles, samples: 64, denoise: true}``, end to
end (``render_dataset_clip``: physics, raster buffers, Cycles frames, flow, encode).

Last, volumes: ``scenes/campfire.yaml`` at 256 x 192, frames 40 to 48 (fire and a
smoke column in the 32 x 32 x 48 gas grid), Cycles at 64 samples with OIDN, one
renderer for all frames, so each frame's time includes writing its OpenVDB grids
and Cycles rebuilding the volume; baseline: the rasteriser's HDR pass of the same
frames (its own ray-marched gas) in the same process.

Run: python benchmarks/bench_cycles.py [--repeats N] [--reference-samples N] [--part all|frame|clip|gas]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_render import bench_scene  # noqa: E402

from hybrid.camera import camera_track  # noqa: E402
from hybrid.render import Rasterizer  # noqa: E402
from hybrid.render.cycles.options import CyclesOptions  # noqa: E402
from hybrid.render.cycles.renderer import CyclesRenderer  # noqa: E402
from hybrid.state import State  # noqa: E402
from hybrid.transforms import rotation_quat  # noqa: E402

SAMPLES = (16, 64, 256)
CLIP_LIMIT_S = 30.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    ea = np.clip(a, 0, None) ** (1 / 2.2)
    eb = np.clip(b, 0, None) ** (1 / 2.2)
    mse = float(np.mean((np.clip(ea, 0, 1) - np.clip(eb, 0, 1)) ** 2))
    return 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")


def rest_state(scene) -> State:
    n = len(scene.objects)
    return State(
        frame=0, time_s=0.0, names=tuple(o.name for o in scene.objects),
        position=np.array([o.position for o in scene.objects], dtype=np.float64),
        quaternion=np.array([rotation_quat(o.rotation_deg, o.quaternion) for o in scene.objects]),
        linear_velocity=np.zeros((n, 3)), angular_velocity=np.zeros((n, 3)),
    )


def time_cycles(scene, state, cam, options: CyclesOptions) -> tuple[float, np.ndarray]:
    with CyclesRenderer(scene, options) as r:
        start = time.perf_counter()
        frame = r.render_hdr(state, cam)
        return time.perf_counter() - start, frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-samples", type=int, default=2048)
    parser.add_argument("--part", choices=("all", "frame", "clip", "gas"), default="all")
    args = parser.parse_args()
    if args.part in ("all", "frame"):
        bench_frame(args)
    if args.part in ("all", "clip"):
        bench_clip()
    if args.part in ("all", "gas"):
        bench_gas()


def bench_frame(args) -> None:

    scene = bench_scene().model_copy(update={"resolution": (256, 256)})
    state = rest_state(scene)
    cam = camera_track(scene).cam_to_world[0]
    threads = os.cpu_count() or 1
    print(f"scene {scene.width}x{scene.height}, {len(scene.objects)} objects, {threads} CPU threads")

    _, reference = time_cycles(scene, state, cam, CyclesOptions(samples=args.reference_samples, denoise=True, denoise_quality="high", seed=99))

    configs = [(s, d) for s in SAMPLES for d in (False, True)]
    times: dict = {c: [] for c in configs}
    quality: dict = {}
    raster_times = []
    with Rasterizer(scene) as raster:
        raster.render_hdr(state, cam)  # shaders compiled before timing
        for rep in range(args.repeats):
            for c in configs[rep % len(configs):] + configs[: rep % len(configs)]:
                took, frame = time_cycles(scene, state, cam, CyclesOptions(samples=c[0], denoise=c[1]))
                times[c].append(took)
                quality[c] = psnr(frame, reference)
                start = time.perf_counter()
                raster_frame = raster.render_hdr(state, cam)
                raster_times.append(time.perf_counter() - start)
    raster_s = statistics.median(raster_times)
    raster_psnr = psnr(raster_frame, reference)
    print(f"\nrasteriser: {raster_s * 1e3:.1f} ms per frame, PSNR {raster_psnr:.1f} dB against the reference")
    print("| samples | OIDN | s per frame | x rasteriser time | PSNR vs 2048-sample reference |")
    print("|---|---|---|---|---|")
    for c in configs:
        t = statistics.median(times[c])
        print(f"| {c[0]} | {'on' if c[1] else 'off'} | {t:.2f} | {t / raster_s:.0f}x | {quality[c]:.1f} dB |")


def bench_clip() -> None:
    from hybrid.data.generate import render_dataset_clip
    from hybrid.data.recipe import load_recipe

    text = open(os.path.join(os.path.dirname(__file__), "..", "datasets", "movi_a.yaml")).read()
    text = text.replace("resolution: [256, 256]", "resolution: [128, 128]")
    text += "\nbeauty: {type: cycles, samples: 64, denoise: true}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "movi_a_cycles.yaml")
        with open(path, "w") as fh:
            fh.write(text)
        recipe = load_recipe(path)
        start = time.perf_counter()
        buffers, _, _ = render_dataset_clip(recipe, 0, 0)
        took = time.perf_counter() - start
    frames = buffers["rgb"].shape[0]
    print(f"\ndataset clip: {frames} frames at 128x128, cycles 64 samples + OIDN: {took:.1f} s "
          f"({'within' if took <= CLIP_LIMIT_S else 'OVER'} the {CLIP_LIMIT_S:.0f} s target)")


def bench_gas() -> None:
    from hybrid.pipeline import simulate
    from hybrid.scene import load_scene

    path = os.path.join(os.path.dirname(__file__), "..", "scenes", "campfire.yaml")
    scene = load_scene(path, {"frames": 49, "resolution": [256, 192]})
    states = simulate(scene)
    track = camera_track(scene).cam_to_world
    frames = range(40, 49)
    cycles_times, raster_times = [], []
    with Rasterizer(scene) as raster, CyclesRenderer(scene, CyclesOptions(samples=64, denoise=True)) as cycles:
        raster.render_hdr(states[39], track[39])  # shaders compiled, scene synced before timing
        cycles.render_hdr(states[39], track[39])
        for k in frames:
            start = time.perf_counter()
            cycles.render_hdr(states[k], track[k])
            cycles_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            raster.render_hdr(states[k], track[k])
            raster_times.append(time.perf_counter() - start)
    c, r = statistics.median(cycles_times), statistics.median(raster_times)
    print(f"\ncampfire 256x192, frames 40-48: cycles 64 samples + OIDN {c:.2f} s per frame, "
          f"rasteriser {r * 1e3:.1f} ms per frame, ratio {c / r:.0f}x")


if __name__ == "__main__":
    main()
