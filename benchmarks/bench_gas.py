"""Gas grid: hybrid's Taichi GasSolver against the same step in vectorised NumPy.

Scene: a closed-sided box with an open top and a hot, smoky, burning emitter near the
floor (buoyancy, vorticity confinement, MacCormack advection, MGPCG projection at the
default tolerance). Both solvers get the same spec; after one warm-up frame each (the
Taichi kernels compile then), frames alternate between them (so a busy machine slows
them alike) and we report cell-updates per second, cells x substeps / s, and their
ratio. Taichi runs on the CPU twice: deterministic (one thread) and on every core.
Run: python benchmarks/bench_gas.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.fields import backend  # noqa: E402
from hybrid.scene.fields_spec import GasSpec  # noqa: E402


def plume_spec(resolution: int) -> GasSpec:
    return GasSpec.model_validate(
        dict(
            domain=dict(min=[0, 0, 0], max=[1, 1, 1]),
            resolution=resolution,
            emitters=[dict(center=[0.5, 0.5, 0.15], radius=0.12, density=2.0, temperature=400.0, fuel=1.0)],
            combustion=dict(),
            max_substeps=1000,
        )
    )


def measure(resolution: int, frames: int, deterministic: bool, fps: float = 24.0) -> dict:
    backend.ensure("cpu", deterministic)
    from hybrid.fields.gas import GasSolver
    from hybrid.fields.gas_numpy import NumpyGas

    spec = plume_spec(resolution)
    gas = GasSolver(spec)
    ref = NumpyGas(spec)
    cells = gas.shape[0] * gas.shape[1] * gas.shape[2]
    dt = 1.0 / fps
    gas.advance(dt, 0.0)  # compile
    ref.advance(dt, 0.0)
    taichi_time = numpy_time = 0.0
    taichi_updates = numpy_updates = 0
    for f in range(1, frames + 1):
        t0 = time.perf_counter()
        n = gas.advance(dt, f * dt).substeps
        taichi_time += time.perf_counter() - t0
        taichi_updates += n * cells
        t0 = time.perf_counter()
        n = ref.advance(dt, f * dt)
        numpy_time += time.perf_counter() - t0
        numpy_updates += n * cells
    gas.close()
    return dict(
        shape=gas.shape,
        taichi=taichi_updates / taichi_time,
        numpy=numpy_updates / numpy_time,
        iterations=gas.report.pressure_iterations,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="32^3, 2 frames, one thread only (under a minute)")
    args = parser.parse_args()
    resolutions, frames, modes = args.resolutions, args.frames, [True, False]
    if args.quick:
        resolutions, frames, modes = [32], 2, [True]
    print(f"gas step, CPU ({os.cpu_count()} cores), {frames} frames at 24 fps after one warm-up frame\n")
    print("| grid | Taichi threads | Taichi cell-updates/s | NumPy cell-updates/s | ratio | CG iterations |")
    print("|---|---|---|---|---|---|")
    for deterministic in modes:
        for res in resolutions:
            r = measure(res, frames, deterministic)
            threads = "1 (deterministic)" if deterministic else f"{os.cpu_count()} (all cores)"
            shape = "x".join(str(s) for s in r["shape"])
            print(
                f"| {shape} | {threads} | {r['taichi']:.3g} | {r['numpy']:.3g} | {r['taichi'] / r['numpy']:.1f}x | "
                f"{r['iterations']} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
