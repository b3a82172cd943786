"""Kernel build time: what a solver costs from nothing to its first frame, against the cost of
one more frame once built.

Each measurement is a fresh process on one Taichi thread, with Taichi's offline cache in a
directory of its own. In turn: a gas solver (a 16^3 box with a hot, burning emitter, as in
``bench_gas.py``) built and stepped one frame (1/24 s), then one more frame; a second gas
solver like it (a new instance, as the next clip of a dataset gets), built and stepped; then
a water tank (16 cells) built and stepped one frame, then one more. Cold: the cache directory
is empty, so LLVM compiles every kernel, as on a fresh machine or CI. Warm: the same directory
again, so compiled kernels load from disk and what is left is Taichi building each kernel's IR
from its Python source. Medians over the repeats.

The gas solver's kernels are methods of the solver (Taichi data-oriented classes over its
fields), so every instance builds them again; the particle solver's are module-level kernels
on ndarrays, built once per material per process, whatever the size.

Run: python benchmarks/bench_kernel_build.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ROWS = ("gas, first instance", "gas, second instance", "water")


def child(cache: str) -> dict:
    from hybrid.fields import backend

    ti = backend._import_taichi()
    init = ti.init
    ti.init = lambda **kw: init(offline_cache_file_path=cache, **kw)
    backend.ensure("cpu", True, threads=1)
    from hybrid.fields.gas import GasSolver
    from hybrid.fields.mpm import LiquidSolver
    from hybrid.scene.fields_spec import LiquidSpec

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_gas import plume_spec

    def timed(make, step):
        t0 = time.perf_counter()
        solver = make()
        step(solver, 0.0)
        t1 = time.perf_counter()
        step(solver, 1 / 24)
        return solver, t1 - t0, time.perf_counter() - t1

    out = {}
    gas_step = lambda s, t: s.advance(1 / 24, t)  # noqa: E731
    for row in ROWS[:2]:
        _, out[row + " build"], out[row + " frame"] = timed(lambda: GasSolver(plume_spec(16)), gas_step)
    water = LiquidSpec.model_validate(
        dict(domain=dict(min=[0, 0, 0], max=[0.4, 0.4, 0.4]), resolution=16, sound_speed=10,
             fill=[dict(min=[0, 0, 0], max=[0.4, 0.4, 0.15])])
    )

    def water_step(s, t):
        s.advance(1 / 24, t)
        s.frame()

    liquid, out["water build"], out["water frame"] = timed(lambda: LiquidSolver(water, None), water_step)
    liquid.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", metavar="CACHE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    runs = {"cold": [], "warm": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="ticache-") as cache:
            for state in ("cold", "warm"):
                r = subprocess.run([sys.executable, __file__, "--child", cache], capture_output=True, text=True,
                                   check=True)
                runs[state].append(json.loads(r.stdout.splitlines()[-1]))
    print("| solver | build and first frame, cold cache (s) | warm cache (s) | one more frame (s) | "
          "warm build / frame |")
    print("|---|---:|---:|---:|---:|")
    for row in ROWS:
        cold, warm = (statistics.median(r[row + " build"] for r in runs[s]) for s in ("cold", "warm"))
        frame = statistics.median(r[row + " frame"] for r in runs["warm"])
        print(f"| {row} | {cold:.2f} | {warm:.2f} | {frame:.3f} | **{warm / frame:.0f}x** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
