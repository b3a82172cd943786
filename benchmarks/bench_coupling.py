"""What coupling a body costs the liquid: a coupling step of water with a floating box, with and without
weighing the water missing next to it, against the same water with no body.

A water tank 0.42 m wide and 0.19 m deep (sound speed 10 m/s, 8 particles per cell) at 1.5 cm
cells (28 x 28 x 22 cells; 81,536 particles, 13 cells deep), as ``benchmarks/convergence_archimedes.py``'s
8-cell case, with a 0.12 m box floating in it; each ``advance`` covers one world step (1/240 s).
Three solvers take turns, warm first, so a busy machine slows them alike:

- ``none``: the same tank without the box;
- ``bodies``: with the box, as the world runs it (the grid update against the box, and the
  water missing next to it weighed once per coupling step: ``_missing_liquid_weight``);
- ``no gap``: with the box but the weighing switched off (the solver's private switch; what the
  coupling cost before the weighing).

Printed: the median time per coupling step of each and the ratios bodies / no gap and bodies / none.

Run: python benchmarks/bench_coupling.py [--threads N] [--rounds R] [--cells 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.fields import backend  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convergence_archimedes import SIDE, STEP, tank  # noqa: E402


def make(cells: int, body: bool, weigh_gap: bool):
    from hybrid.fields.colliders import Colliders, collider_shape
    from hybrid.fields.mpm import LiquidSolver
    from hybrid.scene.spec import ObjectSpec

    spec, width, depth = tank(cells)
    colliders = None
    if body:
        shape = {"type": "box", "size": [SIDE] * 3}
        colliders = Colliders([collider_shape(ObjectSpec.model_validate({"name": "box", "shape": shape}))], [True])
        pos = np.array([[width / 2, width / 2, depth + SIDE / 2 - 0.5 * SIDE]])  # half under: density 500
        colliders.set_state(pos, np.array([[0, 0, 0, 1.0]]), np.zeros((1, 3)), np.zeros((1, 3)), pos)
    solver = LiquidSolver(spec, colliders, (0.0, 0.0, -9.81))
    if body and not weigh_gap:
        solver._weighs_gap = False
    return solver, colliders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="coupling steps per timed run")
    parser.add_argument("--cells", type=int, default=8, help="cells across the box")
    args = parser.parse_args()
    used = backend.ensure("cpu", True, threads=args.threads)
    runs = {name: make(args.cells, body, weigh) for name, body, weigh in
            (("none", False, False), ("bodies", True, True), ("no gap", True, False))}
    times: dict[str, list[float]] = {name: [] for name in runs}
    t = {name: 0.0 for name in runs}

    def run(name: str, steps: int) -> float:
        solver, colliders = runs[name]
        start = time.perf_counter()
        for _ in range(steps):
            solver.advance(STEP, t[name])
            if colliders is not None:
                colliders.take_impulses()  # the box is held: its impulses are read and dropped
            t[name] += STEP
        return (time.perf_counter() - start) / steps

    try:
        for name in runs:
            run(name, 2)  # compile and settle the first substeps
        for _ in range(args.rounds):
            for name in runs:
                times[name].append(run(name, args.steps))
    finally:
        for solver, _ in runs.values():
            solver.close()
    med = {name: statistics.median(v) for name, v in times.items()}
    n = runs["none"][0].n
    print(f"{args.cells} cells across the box, {n:,} particles, {used.threads} thread(s), "
          f"{args.rounds} rounds of {args.steps} coupling steps")
    for name, value in med.items():
        print(f"  {name:7s} {value * 1e3:8.1f} ms per coupling step")
    print(f"  bodies / no gap: {med['bodies'] / med['no gap']:.3f}   bodies / none: {med['bodies'] / med['none']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
