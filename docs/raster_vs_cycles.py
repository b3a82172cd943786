"""Make docs/raster_vs_cycles.png: one frame of a scene from both beauty back ends, side by side.

Run: python docs/raster_vs_cycles.py [SCENE] [--frame K] [--samples N]
Left: the rasteriser; right: Cycles (denoised), the same State and camera.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hybrid.camera import camera_track  # noqa: E402
from hybrid.pipeline import simulate  # noqa: E402
from hybrid.render import Rasterizer  # noqa: E402
from hybrid.render.beauty import encode_display  # noqa: E402
from hybrid.render.cycles.options import CyclesOptions  # noqa: E402
from hybrid.render.cycles.renderer import CyclesRenderer  # noqa: E402
from hybrid.scene import load_scene  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", nargs="?", default=os.path.join(ROOT, "scenes", "showcase.yaml"))
    parser.add_argument("--frame", type=int, default=40)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "raster_vs_cycles.png"))
    args = parser.parse_args()
    import imageio.v3 as iio

    scene = load_scene(args.scene, {"frames": args.frame + 1})
    states = simulate(scene)
    cam = camera_track(scene).cam_to_world[args.frame]
    with Rasterizer(scene) as raster:
        left = encode_display(raster.render_hdr(states[args.frame], cam))
    with CyclesRenderer(scene, CyclesOptions(samples=args.samples, denoise=True)) as cycles:
        right = encode_display(cycles.render_hdr(states[args.frame], cam))
    gap = np.full((scene.height, 4, 3), 255, np.uint8)
    iio.imwrite(args.out, np.concatenate([left, gap, right], axis=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
