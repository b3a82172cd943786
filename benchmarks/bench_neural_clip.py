"""The default neural renderer end to end, and the path-tracer time it saves for the same quality.

Part 1, end to end: ``hybrid render SCENE --renderer neural --resolution 256x256
--frames 48`` in a fresh process (start-up and imports, physics, raster passes, flow,
neural sampling with the checkpoint's own step count, detail transfer, MP4 and
buffer files), wall time, for scenes/bouncing_balls.yaml and scenes/showcase.yaml.
Baseline: the same command with ``--renderer raster``, interleaved, medians over
--repeats. The issue's bound is 120 s on two CPU cores.

Part 2, equal quality: clips of the checkpoint's recipe (datasets/neural_pt.yaml)
drawn with the held-out seed 1 at 256 x 256, --frames frames each. Reference: Cycles
at --reference-samples samples per pixel with OIDN at high quality. Cycles + OIDN at
1, 2, 4, ... 64 samples, and the neural renderer from the raster buffers, each scored
by PSNR against the reference (mean over frames and clips). The sample count at which
Cycles reaches the neural renderer's PSNR is interpolated in log2(samples); its time
per frame (interpolated the same way) is set against the neural renderer's (raster
passes + sampling + transfer) per frame. Cycles uses every core (threads 0).

Run: python benchmarks/bench_neural_clip.py [--part all|clip|equal] [--repeats 2] [--clips 2] [--frames 8]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SCENES = ("bouncing_balls", "showcase")
SWEEP = (1, 2, 4, 8, 16, 32, 64)
LIMIT_S = 120.0


def run_render(scene: str, renderer: str, out: str) -> float:
    cmd = [os.path.join(os.path.dirname(sys.executable), "hybrid"), "render", os.path.join(REPO, "scenes", f"{scene}.yaml"),
           "--out", out, "--renderer", renderer, "--resolution", "256x256", "--frames", "48", "-q"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench_clip(args) -> None:
    times: dict = {(s, r): [] for s in SCENES for r in ("raster", "neural")}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for scene in SCENES:
                order = ("raster", "neural") if rep % 2 == 0 else ("neural", "raster")
                for renderer in order:
                    times[(scene, renderer)].append(run_render(scene, renderer, os.path.join(tmp, f"{scene}_{renderer}_{rep}")))
    print(f"\nend to end, 48 frames at 256x256, {os.cpu_count()} CPU threads, medians of {args.repeats}")
    print("| scene | raster (s) | neural (s) | neural / raster | within 120 s |")
    print("|---|---:|---:|---:|---|")
    for scene in SCENES:
        r, n = statistics.median(times[(scene, "raster")]), statistics.median(times[(scene, "neural")])
        print(f"| {scene} | {r:.1f} | {n:.1f} | {n / r:.2f}x | {'yes' if n <= LIMIT_S else 'NO'} |")


def bench_equal(args) -> None:
    from hybrid.data.generate import draw_clip, dataset_beauty
    from hybrid.data.recipe import load_recipe
    from hybrid.neural.evaluate import frame_scores
    from hybrid.neural.sampler import DEFAULT_CHECKPOINT, NeuralRenderer
    from hybrid.camera import camera_track
    from hybrid.io.metadata import build_metadata
    from hybrid.pipeline import render_buffers
    from hybrid.render.backends import BeautyChoice

    renderer = NeuralRenderer.from_checkpoint(args.checkpoint or DEFAULT_CHECKPOINT)
    recipe = load_recipe(os.path.join(REPO, "datasets", "neural_pt.yaml"))
    recipe = recipe.model_copy(update={"clip": recipe.clip.model_copy(update={"resolution": (256, 256), "frames": args.frames})})
    psnr: dict = {s: [] for s in SWEEP}
    seconds: dict = {s: [] for s in SWEEP}
    neural_psnr, neural_s, raster_psnr = [], [], []
    for index in range(args.clips):
        scene, states, _ = draw_clip(recipe, 1, index)
        track = camera_track(scene)
        seed = dataset_beauty(recipe, 1, index).options["seed"]

        def cycles(samples: int, quality: str = "balanced"):
            options = {"samples": samples, "denoise": True, "denoise_quality": quality, "seed": seed, "threads": 0}
            start = time.perf_counter()
            out = render_buffers(scene, states, track, beauty=BeautyChoice("cycles", options), grain_key=(1, index))
            return out, (time.perf_counter() - start) / len(states)

        reference, _ = cycles(args.reference_samples, "high")
        ref = reference["rgb"]
        for s in SWEEP:
            out, took = cycles(s)
            psnr[s].append(float(np.mean(frame_scores(out["rgb"], ref)[0])))
            seconds[s].append(took)
        start = time.perf_counter()
        buffers = render_buffers(scene, states, track, grain_key=(1, index))
        metadata = build_metadata(scene, states, track.K, track.cam_to_world)
        made = renderer.render(buffers, metadata, seed=index)
        neural_s.append((time.perf_counter() - start) / len(states))
        neural_psnr.append(float(np.mean(frame_scores(made, ref)[0])))
        raster_psnr.append(float(np.mean(frame_scores(buffers["rgb"], ref)[0])))
        print(f"clip {index}: neural {neural_psnr[-1]:.2f} dB, raster {raster_psnr[-1]:.2f} dB, "
              + ", ".join(f"{s} spp {psnr[s][-1]:.2f}" for s in SWEEP), flush=True)
    p = {s: float(np.mean(v)) for s, v in psnr.items()}
    t = {s: float(np.mean(v)) for s, v in seconds.items()}
    n_psnr, n_s = float(np.mean(neural_psnr)), float(np.mean(neural_s))
    print(f"\nequal quality, {args.clips} clips x {args.frames} frames of neural_pt (seed 1) at 256x256, reference "
          f"Cycles {args.reference_samples} spp + OIDN high, {os.cpu_count()} CPU threads")
    print("| beauty | PSNR vs reference (dB) | s per frame |")
    print("|---|---:|---:|")
    print(f"| raster | {np.mean(raster_psnr):.2f} | |")
    print(f"| neural (raster passes + {renderer.config.sample_steps} steps + transfer) | {n_psnr:.2f} | {n_s:.3f} |")
    for s in SWEEP:
        print(f"| Cycles {s} spp + OIDN | {p[s]:.2f} | {t[s]:.2f} |")
    above = [s for s in SWEEP if p[s] >= n_psnr]
    if not above:
        print(f"Cycles never reaches the neural PSNR up to {SWEEP[-1]} spp")
        return
    hi = above[0]
    if hi == SWEEP[0]:
        print(f"Cycles at {hi} spp already matches the neural renderer: {t[hi] / n_s:.1f}x its time per frame")
        return
    lo = SWEEP[SWEEP.index(hi) - 1]
    f = (n_psnr - p[lo]) / (p[hi] - p[lo])
    samples = 2 ** (math.log2(lo) + f * (math.log2(hi) - math.log2(lo)))
    took = t[lo] + f * (t[hi] - t[lo])
    print(f"Cycles matches the neural PSNR at about {samples:.1f} spp: {took:.2f} s per frame, "
          f"{took / n_s:.1f}x the neural renderer's {n_s:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "clip", "equal"), default="all")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--reference-samples", type=int, default=512)
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    if args.part in ("all", "clip"):
        bench_clip(args)
    if args.part in ("all", "equal"):
        bench_equal(args)


if __name__ == "__main__":
    main()
