"""Make docs/<scene>_burns.png: four frames of a burning scene, rasterised (top row) with its albedo
buffer below (the char, exactly as the renderer draws it), the same States and camera.

Run: python docs/fire_previews.py [SCENE ...] [--width W]
Default: the burning example scenes (paper_sheet, paper_lanterns, burning_dominoes, campfire).
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
from hybrid.scene import load_scene  # noqa: E402

SCENES = ("paper_sheet", "paper_lanterns", "burning_dominoes", "campfire")


def frames_to_show(states) -> list[int]:
    """Four frames evenly from the first to the last, the first one after the scene's flame is lit."""
    last = len(states) - 1
    return [round(last * f) for f in (0.2, 0.45, 0.7, 1.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenes", nargs="*", default=[os.path.join(ROOT, "scenes", f"{s}.yaml") for s in SCENES])
    parser.add_argument("--width", type=int, default=320)
    args = parser.parse_args()
    import imageio.v3 as iio

    for path in args.scenes:
        scene = load_scene(path)
        height = round(scene.height * args.width / scene.width / 2) * 2
        scene = load_scene(path, {"resolution": [args.width, height]})
        states = simulate(scene)
        cams = camera_track(scene).cam_to_world
        shown = frames_to_show(states)
        with Rasterizer(scene) as raster:
            frames = [raster.render(states[k], cams[k]) for k in shown]
        top = np.concatenate([f["rgb"] for f in frames], axis=1)
        bottom = np.concatenate([f["albedo"] for f in frames], axis=1)
        out = os.path.join(ROOT, "docs", f"{scene.name}_burns.png")
        iio.imwrite(out, np.concatenate([top, bottom], axis=0))
        print(f"{out}: frames {shown}")


if __name__ == "__main__":
    main()
