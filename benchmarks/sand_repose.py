"""Sand's slopes against its friction angle: the numbers in README.md's sand paragraph.

Two set-ups, both on a sticky floor (8 particles per cell, density 1600 kg/m^3):

- ``cut``: a bank 0.1 m tall whose face is cut at `slope` degrees (stacked fill
  boxes, one cell wide), in a box 0.5 m long and `--width` wide, settled for 1 s.
  Mohr-Coulomb sand of friction angle phi holds a cut slope up to phi and no steeper,
  so a bank steeper than phi must slump.
- ``collapse``: a column 0.16 m square and 0.08 m tall released in the middle of a box
  0.6 m wide, settled for 1.5 s: its flank is what flowing sand leaves.

The flank angle is a line fitted to the highest particle per one-cell strip, between 20 %
and 80 % of the bank's height or the pile's peak: for the cut bank along the middle 0.1 m
of its width; for the collapse along each of the column's four face mid-lines (a strip two
cells wide through the centre, where the flow is nearly two-dimensional as in a channel),
and also per ring around the centre. The highest particle per ring lies on the diagonals,
where the square's corners spread radially and thin out, so the ring's flank is flatter.

Run: python benchmarks/sand_repose.py cut --phi 30 40 --slopes 30 45 50 [--cells 48] [--width 0.5]
     python benchmarks/sand_repose.py collapse --phi 20 30 40 [--cells 48] [--youngs 5.6e6]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BANK = 0.1  # m, the cut bank's height
BANK_BACK = 0.1  # m, flat top behind the cut face
COLUMN = (0.16, 0.08)  # m, the collapsing column's side and height


def _spec(domain, cells, phi, fill, youngs=None):
    from hybrid.scene.fields_spec import LiquidSpec

    return LiquidSpec.model_validate(
        dict(domain=domain, resolution=cells, material="sand", density=1600.0, friction_angle_deg=phi, walls="sticky",
             fill=fill, youngs_modulus=youngs)
    )


def _settle(spec, seconds):
    from hybrid.fields.mpm import LiquidSolver

    solver = LiquidSolver(spec, None)
    try:
        t = 0.0
        while t < seconds - 1e-9:
            solver.advance(1 / 60, t)
            frame = solver.frame()
            t += 1 / 60
        return frame.position.astype(np.float64), float(np.linalg.norm(frame.velocity, axis=1).max()), frame.cell_size
    finally:
        solver.close()


def _fit(centres, top, lo, hi):
    """Slope (degrees, downhill positive) of the surface heights `top` (-inf: no sand) between lo and hi."""
    keep = np.isfinite(top) & (top > lo) & (top < hi)
    return math.degrees(math.atan(-np.polyfit(centres[keep], top[keep], 1)[0]))


def cut(cells: int, phi: float, slope: float, width: float, youngs=None) -> tuple[float, float, float]:
    """(slope as built, slope after 1 s, largest speed then) of a bank cut at `slope` degrees."""
    length = 0.5
    dx = length / cells
    fill = [dict(min=[0, 0, 0], max=[BANK_BACK, width, BANK])]
    end = BANK_BACK + BANK / math.tan(math.radians(slope))
    x = BANK_BACK
    while x < end - 1e-9:
        h = round((BANK - (x + dx / 2 - BANK_BACK) * math.tan(math.radians(slope))) / dx) * dx
        if h > 0:
            fill.append(dict(min=[x, 0, 0], max=[x + dx, width, h]))
        x += dx
    spec = _spec(dict(min=[0, 0, 0], max=[length, width, 2 * BANK]), cells, phi, fill, youngs)

    def angle(p):
        strip = np.abs(p[:, 1] - width / 2) < min(width / 2 - 2 * dx, 0.05)
        edges = np.arange(0.0, length, dx)
        top = np.array([p[strip & (p[:, 0] >= a) & (p[:, 0] < a + dx), 2].max(initial=-np.inf) for a in edges])
        centres = edges + dx / 2
        top[centres < BANK_BACK] = np.nan
        return _fit(centres, top, 0.2 * BANK, 0.8 * BANK)

    from hybrid.fields.mpm import seed_particles

    built = angle(seed_particles(spec)[0])
    p, vmax, _ = _settle(spec, 1.0)
    return built, angle(p), vmax


def _profile_flank(along, z, dx):
    """Flank (degrees) of the surface `z` over the distance `along` from the pile's centre."""
    edges = np.arange(0.0, along.max() + dx, dx)
    top = np.array([z[(along >= a) & (along < a + dx)].max(initial=-np.inf) for a in edges])
    peak = float(top[np.isfinite(top)].max())
    return _fit(edges + dx / 2, top, 0.2 * peak, 0.8 * peak), peak


def collapse_flanks(p: np.ndarray, dx: float, centre=(0.3, 0.3)) -> tuple[list[float], float]:
    """([flank along +x, -x, +y, -y face mid-lines], flank per ring) of a pile, degrees."""
    faces = []
    for axis in (0, 1):
        strip = np.abs(p[:, 1 - axis] - centre[1 - axis]) < dx
        for sign in (1.0, -1.0):
            faces.append(_profile_flank(sign * (p[strip, axis] - centre[axis]), p[strip, 2], dx)[0])
    ring, _ = _profile_flank(np.hypot(p[:, 0] - centre[0], p[:, 1] - centre[1]), p[:, 2], dx)
    return faces, ring


def collapse(cells: int, phi: float, youngs=None) -> tuple[list[float], float, float, float]:
    """(face flanks, ring flank, peak height m, largest speed) of the collapsed column after 1.5 s."""
    side, height = COLUMN
    lo, hi = 0.3 - side / 2, 0.3 + side / 2
    spec = _spec(dict(min=[0, 0, 0], max=[0.6, 0.6, 0.3]), cells, phi, [dict(min=[lo, lo, 0.0], max=[hi, hi, height])],
                 youngs)
    p, vmax, dx = _settle(spec, 1.5)
    faces, ring = collapse_flanks(p, dx)
    return faces, ring, float(p[:, 2].max()), vmax


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", choices=["cut", "collapse"])
    ap.add_argument("--phi", type=float, nargs="+", default=[30.0, 40.0], help="friction angles, degrees")
    ap.add_argument("--slopes", type=float, nargs="+", default=[30.0, 45.0], help="cut: slopes, degrees")
    ap.add_argument("--cells", type=int, default=48, help="cells along the box's longest side")
    ap.add_argument("--width", type=float, default=0.5, help="cut: the box's width, m")
    ap.add_argument("--youngs", type=float, default=None, help="Young's modulus, Pa (default: the material's)")
    ap.add_argument("--threads", type=int, default=None, help="Taichi CPU threads (default: all)")
    args = ap.parse_args(argv)
    from hybrid.fields import backend

    backend.ensure("cpu", True, threads=args.threads)
    for phi in args.phi:
        if args.case == "cut":
            for slope in args.slopes:
                t0 = time.time()
                built, after, vmax = cut(args.cells, phi, slope, args.width, args.youngs)
                print(f"phi {phi:g}: bank cut at {built:.1f} deg stands at {after:.1f} after 1 s "
                      f"(largest speed {vmax:.3f} m/s; {time.time() - t0:.0f} s)", flush=True)
        else:
            t0 = time.time()
            faces, ring, peak, vmax = collapse(args.cells, phi, args.youngs)
            print(f"phi {phi:g}: collapsed column's flank {np.mean(faces):.1f} deg along the faces "
                  f"({', '.join(f'{a:.1f}' for a in faces)}), {ring:.1f} per ring; peak {peak * 100:.2f} cm "
                  f"(largest speed {vmax:.3f} m/s; {time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
