"""Make docs/<scene>_breaks.png: four frames of a breaking scene (before, at, after the break, and the end),
path traced with Cycles (top row) and rasterised (bottom row), the same States and camera.

Run: python docs/breaking_previews.py [SCENE ...] [--samples N] [--width W]
Default: the three breaking example scenes (wine_glass, window_pane, falling_plates).
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

SCENES = ("wine_glass", "window_pane", "falling_plates")


def frames_to_show(states) -> list[int]:
    """The frame before the first break, the first broken frame, the last break's (or a few frames on
    when there is one), and the last frame."""
    breaks = states[-1].breaks
    first = breaks[0].frame if breaks else len(states) // 3
    last = len(states) - 1
    later = breaks[-1].frame if breaks and breaks[-1].frame > first + 2 else min(last, first + 4)
    return sorted({max(0, first - 1), first, later, last})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="*", default=[os.path.join(ROOT, "scenes", f"{s}.yaml") for s in SCENES])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--width", type=int, default=400)
    args = parser.parse_args()
    import imageio.v3 as iio

    for path in args.scenes:
        scene = load_scene(path)
        height = round(scene.height * args.width / scene.width / 2) * 2
        scene = load_scene(path, {"resolution": [args.width, height]})
        states = simulate(scene)
        cams = camera_track(scene).cam_to_world
        shown = frames_to_show(states)
        with CyclesRenderer(scene, CyclesOptions(samples=args.samples, denoise=True)) as cycles:
            top = [encode_display(cycles.render_hdr(states[k], cams[k])) for k in shown]
        with Rasterizer(scene) as raster:
            bottom = [encode_display(raster.render_hdr(states[k], cams[k])) for k in shown]
        sheet = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
        out = os.path.join(ROOT, "docs", f"{scene.name}_breaks.png")
        iio.imwrite(out, sheet)
        print(f"{out}: frames {shown}")


if __name__ == "__main__":
    main()
