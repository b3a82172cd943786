"""The neural renderer on every example scene, against Cycles: none of scenes/ comes from a training recipe.

Each scene in scenes/ is simulated and rendered at 256 pixels on its long side for
its first --frames frames: the rasteriser's buffers and beauty, the same frames
path traced by Cycles (--samples paths per pixel, OIDN denoised) as the reference,
and the neural renderer (--checkpoint, its own sample_steps) from the raster
buffers. Per scene: PSNR and SSIM of the raster frame and of the neural frame
against the Cycles frame, averaged over frames, and their difference. A contact
sheet (reference | raster | neural, one frame per scene, the last) is written
next to the report.

Run: python benchmarks/eval_scenes.py [--checkpoint DIR] [--frames 16] [--samples 64] [--out EVAL_scenes.md]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from hybrid.camera import camera_track  # noqa: E402
from hybrid.io.metadata import build_metadata  # noqa: E402
from hybrid.neural.evaluate import frame_scores  # noqa: E402
from hybrid.neural.sampler import DEFAULT_CHECKPOINT, NeuralRenderer  # noqa: E402
from hybrid.pipeline import render_buffers, simulate  # noqa: E402
from hybrid.render.backends import BeautyChoice  # noqa: E402
from hybrid.scene import load_scene  # noqa: E402

LONG_SIDE = 256


def scene_size(scene) -> tuple[int, int]:
    """(width, height) with LONG_SIDE pixels on the long side, the scene's aspect, even numbers."""
    w, h = scene.width, scene.height
    s = LONG_SIDE / max(w, h)
    return max(2, round(w * s / 2) * 2), max(2, round(h * s / 2) * 2)


def one_scene(path: str, renderer: NeuralRenderer, frames: int, samples: int) -> dict:
    scene = load_scene(path)
    width, height = scene_size(scene)
    scene = load_scene(path, {"frames": min(frames, scene.frame_count), "resolution": [width, height]})
    start = time.perf_counter()
    states = simulate(scene)
    track = camera_track(scene)
    beauty = BeautyChoice("cycles", {"samples": samples, "denoise": True})
    buffers = render_buffers(scene, states, track, beauty=beauty, grain_key=(scene.seed,), keep_raster=True)
    traced = time.perf_counter() - start
    metadata = build_metadata(scene, states, track.K, track.cam_to_world, buffers)
    start = time.perf_counter()
    neural = renderer.render(buffers, metadata, seed=scene.seed)
    sampled = time.perf_counter() - start
    reference, raster = buffers["rgb"], buffers["rgb_raster"]
    row = {"scene": os.path.basename(path), "size": f"{width}x{height}", "frames": len(states),
           "fields": sorted(k for k in ("gas", "liquid") if getattr(scene.fields, k, None) is not None) if scene.fields else [],
           "cycles_and_raster_s": traced, "neural_s": sampled}
    for name, frames_ in (("raster", raster), ("neural", neural)):
        p, s = frame_scores(frames_, reference)
        row[f"{name}_psnr"], row[f"{name}_ssim"] = float(np.mean(p)), float(np.mean(s))
    row["sheet"] = np.concatenate([reference[-1], raster[-1], neural[-1]], axis=1)
    return row


def write(rows: list[dict], out: str, args) -> None:
    from PIL import Image

    lines = [
        "| scene | size | fields | raster PSNR | neural PSNR | gain | raster SSIM | neural SSIM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scene']} | {r['size']} | {', '.join(r['fields']) or '-'} | {r['raster_psnr']:.2f} | "
            f"{r['neural_psnr']:.2f} | {r['neural_psnr'] - r['raster_psnr']:+.2f} | {r['raster_ssim']:.3f} | "
            f"{r['neural_ssim']:.3f} |"
        )
    gains = [r["neural_psnr"] - r["raster_psnr"] for r in rows]
    lines.append(
        f"| mean | | | {np.mean([r['raster_psnr'] for r in rows]):.2f} | {np.mean([r['neural_psnr'] for r in rows]):.2f} | "
        f"{np.mean(gains):+.2f} | {np.mean([r['raster_ssim'] for r in rows]):.3f} | "
        f"{np.mean([r['neural_ssim'] for r in rows]):.3f} |"
    )
    sheet_name = os.path.splitext(os.path.basename(out))[0] + "_sheet.png"
    width = max(r["sheet"].shape[1] for r in rows)
    padded = [np.pad(r["sheet"], ((0, 4), (0, width - r["sheet"].shape[1]), (0, 0))) for r in rows]
    Image.fromarray(np.concatenate(padded)).save(os.path.join(os.path.dirname(os.path.abspath(out)), sheet_name))
    head = (
        f"# The neural renderer on the example scenes\n\nCheckpoint `{os.path.relpath(args.checkpoint, REPO)}`, first "
        f"{args.frames} frames of every scene in `scenes/` at {LONG_SIDE} pixels on the long side; reference: Cycles "
        f"at {args.samples} samples per pixel with OIDN. PSNR (dB) and SSIM against the reference, means over frames. "
        f"Scenes the model won: {sum(g >= 0 for g in gains)} of {len(gains)}.\n\n"
        f"Made by `python benchmarks/eval_scenes.py --frames {args.frames} --samples {args.samples} --out "
        f"{os.path.basename(out)}`.\n\n"
    )
    tail = f"\n\n![reference, raster, neural: the last frame of each scene, in table order]({sheet_name})\n"
    with open(out + ".tmp", "w") as fh:
        fh.write(head + "\n".join(lines) + tail)
    os.replace(out + ".tmp", out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--scenes", default=os.path.join(REPO, "scenes"))
    parser.add_argument("--out", default=os.path.join(REPO, "EVAL_scenes.md"))
    args = parser.parse_args()
    renderer = NeuralRenderer.from_checkpoint(args.checkpoint)
    rows = []
    for path in sorted(glob.glob(os.path.join(args.scenes, "*.yaml"))):
        row = one_scene(path, renderer, args.frames, args.samples)
        print(f"{row['scene']}: raster {row['raster_psnr']:.2f} dB, neural {row['neural_psnr']:.2f} dB "
              f"(cycles+raster {row['cycles_and_raster_s']:.0f} s, neural {row['neural_s']:.1f} s)", flush=True)
        rows.append(row)
    write(rows, args.out, args)


if __name__ == "__main__":
    main()
