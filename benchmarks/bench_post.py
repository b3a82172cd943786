"""Post chain cost: every effect on a 256 x 256 frame vs the rasteriser's plain rgb pass.

Ours: ``apply_chain`` with every effect but motion blur (which only averages
sub-frames): the GAME_LOOK chain (exposure, bloom, colour grade, vignette, ACES tone
mapping, film grain) with depth of field and chromatic aberration added after the
exposure, on the linear light of a rendered frame, with its depth and K.
Baseline: the pyrender colour pass of the same 256 x 256 scene (a floor and six
objects, ambient light plus a directional light with shadows), the pass whose output
the chain post-processes. Both run on one thread in this process (NumPy's pools and
Mesa's llvmpipe rasteriser, LP_NUM_THREADS=0, set to one), alternating; the medians
are compared. Times are this process's CPU time (``time.process_time``), which on a
shared machine leaves out the time spent waiting for a core. A second line times the
GAME_LOOK chain alone; per-effect times (each alone on the same frame) follow.

Run: python benchmarks/bench_post.py [--repeats N]
"""

from __future__ import annotations

import os

# One thread for NumPy's BLAS and OpenMP pools, set before NumPy loads them, and for
# Mesa's software rasteriser (0: rasterise in the calling thread).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("LP_NUM_THREADS", "0")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_render import bench_scene  # noqa: E402  (the same 256x256 scene as the render benchmark)

from hybrid.camera import camera_track  # noqa: E402
from hybrid.render.post import EFFECTS, GAME_LOOK, Frame, apply_chain, gamma_to_linear, parse_chain  # noqa: E402
from hybrid.render.post.color import linear_to_srgb  # noqa: E402
from hybrid.state import State  # noqa: E402

SIZE = 256


def full_chain(focus_m: float) -> list[dict]:
    return [
        GAME_LOOK[0],
        {"type": "depth_of_field", "focus_distance_m": focus_m, "f_number": 1.4, "sensor_height_mm": 36.0},
        {"type": "chromatic_aberration", "shift_px": 1.0},
        *GAME_LOOK[1:],
    ]


def cpu_ms(fn) -> float:
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1e3


def median_ms(fn, repeats: int) -> float:
    return statistics.median(cpu_ms(fn) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()

    from hybrid.render import Rasterizer
    from hybrid.render.gl import pyrender

    scene = bench_scene()
    track = camera_track(scene)
    n = len(scene.objects)
    state = State(frame=0, time_s=0.0, names=tuple(o.name for o in scene.objects),
                  position=np.array([o.position for o in scene.objects], dtype=np.float64),
                  quaternion=np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)), linear_velocity=np.zeros((n, 3)),
                  angular_velocity=np.zeros((n, 3)))
    with Rasterizer(scene) as rast:
        buffers = rast.render(state, track.cam_to_world[0])
        flags = rast.rgb_flags | pyrender.RenderFlags.OFFSCREEN

        def rgb_pass() -> None:
            rast.make_current()
            rast.set_frame(state, track.cam_to_world[0])
            rast.renderer.render(rast.pyrender_scene, flags)

        # pyrender's bytes are gamma 2.2, clipped at 1: its exact inverse gives linear light.
        linear = gamma_to_linear(buffers["rgb"])
        depth, K = buffers["depth"], track.K
        focus = float(np.median(depth[depth > 0]))
        chain = parse_chain(full_chain(focus))
        rng = np.random.default_rng(0)

        def compare(specs, name: str) -> None:
            def post() -> None:
                apply_chain(linear, specs, depth=depth, K=K, rng=rng)

            for _ in range(3):  # warm up: shader compilation, caches
                rgb_pass()
                post()
            post_ms, rgb_ms = [], []
            for r in range(args.repeats):
                for fn, out in ((post, post_ms), (rgb_pass, rgb_ms))[:: 1 if r % 2 else -1]:
                    out.append(cpu_ms(fn))
            post_med, rgb_med = statistics.median(post_ms), statistics.median(rgb_ms)
            print(f"{name} {post_med:.2f} ms vs rgb pass {rgb_med:.1f} ms: ratio {post_med / rgb_med:.3f}")

        compare(chain, "post chain")
        compare(parse_chain(GAME_LOOK), "post chain (GAME_LOOK only: no depth of field, no aberration)")

    planar = np.ascontiguousarray(np.moveaxis(linear, -1, 0)) * np.float32(2.0)
    display = linear_to_srgb(np.clip(planar, 0, 1))
    print(f"per effect on the {SIZE}x{SIZE} frame, alone (median of {args.repeats}):")
    for spec in chain:
        frame = Frame(rgb=display if spec.space == "display" else planar, depth=depth, K=K)
        fn = EFFECTS[spec.type].fn
        fn(frame, spec, rng)
        print(f"  {spec.type:22s} {median_ms(lambda: fn(frame, spec, rng), args.repeats):6.2f} ms")


if __name__ == "__main__":
    main()
