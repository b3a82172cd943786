"""Floating bodies against Archimedes at several cell sizes: the buoyancy table in README.md.

A box (or sphere) of side 0.12 m and density 250, 500 or 800 kg/m^3, free to move
vertically, floats in a water tank 3.5 bodies wide and 1.6 bodies deep (sound speed
10 m/s, 8 particles per cell), coupled every 1/240 s as the world couples pybullet.
The body starts at its expected equilibrium, raised by `offset` cells (0 and 0.5 put
its faces at two different places between grid nodes). A damper on its vertical
velocity (about critical for the heave mode; zero force at rest, so it moves the
settling time, not the equilibrium) lets it settle within the run. Over the last 0.4 s
the mean bottom height is taken; the free surface is the liquid's own volume
(``LiquidSolver.volume``: particle volumes times J) plus the body's submerged volume,
spread over the tank; the draft is surface minus bottom.

Reported per case: submerged volume / Archimedes' V rho / rho_w (1 is exact) and the
draft error in cells.

Run: python benchmarks/convergence_archimedes.py [--cells 4 6 8 12] [--densities 250 500 800]
     [--offsets 0 0.5] [--shape box] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.fields import backend  # noqa: E402

SIDE = 0.12  # m, the body's side (box) or diameter (sphere)
WATER = 1000.0
G = 9.81
STEP = 1 / 240  # s, the world's physics step, at which bodies and liquid exchange impulses
SECONDS = 1.6
AVERAGE = 0.4  # s at the end over which the position is averaged


def submerged(kind: str, h: float) -> float:
    """Volume (m^3) of the body below a draft h."""
    h = min(max(h, 0.0), SIDE)
    return SIDE * SIDE * h if kind == "box" else math.pi * h * h * (1.5 * SIDE - h) / 3


def volume(kind: str) -> float:
    return SIDE**3 if kind == "box" else math.pi / 6 * SIDE**3


def archimedes_draft(kind: str, rho: float) -> float:
    want = volume(kind) * rho / WATER
    lo, hi = 0.0, SIDE
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if submerged(kind, mid) < want else (lo, mid)
    return lo


def tank(cells: int):
    """(spec, tank width m, water depth m) of the tank for a body `cells` cells across."""
    from hybrid.scene.fields_spec import LiquidSpec

    dx = SIDE / cells
    across = round(3.5 * SIDE / dx)
    width = across * dx
    depth = 1.6 * SIDE
    tall = round((depth + 1.2 * SIDE) / dx)
    spec = LiquidSpec.model_validate(dict(
        domain=dict(min=[0, 0, 0], max=[width, width, tall * dx]), resolution=max(across, tall), sound_speed=10.0,
        particles_per_cell=8, fill=[dict(min=[0, 0, 0], max=[width, width, depth])], max_substeps=100000))
    return spec, width, depth


def run(kind: str, cells: int, rho: float, offset: float) -> dict:
    from hybrid.fields.colliders import Colliders, collider_shape
    from hybrid.fields.mpm import LiquidSolver
    from hybrid.scene.spec import ObjectSpec

    dx = SIDE / cells
    spec, width, depth = tank(cells)
    shape = {"type": "box", "size": [SIDE] * 3} if kind == "box" else {"type": "sphere", "radius": SIDE / 2}
    colliders = Colliders([collider_shape(ObjectSpec.model_validate({"name": "body", "shape": shape}))], [True])
    mass = rho * volume(kind)
    draft_expected = archimedes_draft(kind, rho)
    z = depth + mass / WATER / (width * width) - draft_expected + SIDE / 2 + offset * dx
    vz, t = 0.0, 0.0
    area = SIDE * SIDE if kind == "box" else math.pi * (SIDE / 2) ** 2
    damper = 2 * math.sqrt(WATER * G * area * mass * 1.5)  # heave stiffness rho_w g A, mass with some added mass
    heights = []
    solver = LiquidSolver(spec, colliders)
    start = time.perf_counter()
    try:
        while t < SECONDS - 1e-9:
            pos = np.array([[width / 2, width / 2, z]])
            colliders.set_state(pos, np.array([[0, 0, 0, 1.0]]), np.array([[0, 0, vz]]), np.zeros((1, 3)), pos)
            solver.advance(STEP, t)
            impulse, _ = colliders.take_impulses()
            vz += (impulse[0, 2] - damper * vz * STEP) / mass - G * STEP
            z += vz * STEP
            t += STEP
            if t > SECONDS - AVERAGE:
                heights.append(z)
        water = solver.volume()
    finally:
        solver.close()
    bottom = float(np.mean(heights)) - SIDE / 2
    surface = depth
    for _ in range(60):
        surface = (water + submerged(kind, surface - bottom)) / (width * width)
    draft = surface - bottom
    return dict(shape=kind, cells=cells, density=rho, offset=offset,
                ratio=submerged(kind, draft) / submerged(kind, draft_expected),
                draft_error_cells=(draft - draft_expected) / dx, bob_cells=float(np.ptp(heights)) / dx,
                seconds=time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[4, 6, 8, 12])
    parser.add_argument("--densities", type=float, nargs="+", default=[250.0, 500.0, 800.0])
    parser.add_argument("--offsets", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--shape", choices=["box", "sphere"], default="box")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="append each result as a JSON line to this file")
    args = parser.parse_args()
    backend.ensure("cpu", True, threads=args.threads)
    print("| shape | cells across | density | offset (cells) | submerged / Archimedes | draft error (cells) | s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cells in args.cells:
        for rho in args.densities:
            for offset in args.offsets:
                row = run(args.shape, cells, rho, offset)
                print(f"| {row['shape']} | {cells} | {rho:.0f} | {offset:g} | {row['ratio']:.3f} | "
                      f"{row['draft_error_cells']:+.3f} | {row['seconds']:.0f} |", flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
