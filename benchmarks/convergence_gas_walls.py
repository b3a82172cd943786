"""Viscous gas flows against their closed forms at several cell sizes: the convergence table in README.md.

Couette: a gap of 0.32 m sheared at U = 0.1 m/s, either by a `moving_wall` face or by
a sliding rigid slab whose underside lies 0.3 or 0.8 cells below a cell boundary (no
slip must hold at its true surface). Poiseuille: a 2-D channel (free-slip sides) fed
by a uniform inflow of 0.02 m/s, the profile read 1.5 gap widths downstream. Every
run lasts 1.5 viscous times h^2 / nu (the start-up transient has decayed to 4e-7 of U),
so what is left is the method's own error: the max over the profile of
|u - exact| / U (Couette) or / the centre speed 1.5 U (Poiseuille).

Run: python benchmarks/convergence_gas_walls.py [--cells 8 16 32]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybrid.fields import backend  # noqa: E402

backend.ensure("cpu", True)

from hybrid.fields.colliders import Colliders, collider_shape  # noqa: E402
from hybrid.fields.gas import GasSolver  # noqa: E402
from hybrid.scene.fields_spec import GasSpec  # noqa: E402
from hybrid.scene.spec import ObjectSpec  # noqa: E402

NU, H = 0.01, 0.32


def spec(cells: int, top, nx: int = 4, x_min="pass_through") -> GasSpec:
    dx = H / cells
    return GasSpec.model_validate(dict(
        domain=dict(min=[0, 0, 0], max=[nx * dx, 4 * dx, H]), resolution=max(cells, nx), vorticity=0.0, cooling=0.0,
        viscosity=NU, buoyancy=dict(thermal=0.0, smoke_weight=0.0), pressure=dict(tolerance=1e-6, max_iterations=500),
        boundaries=dict(x_min=x_min, x_max="pass_through", y_min="wall", y_max="wall", z_min="no_slip", z_max=top),
        max_substeps=1000))


def settle(gas: GasSolver, gap: float, step: float) -> np.ndarray:
    seconds = 1.5 * gap**2 / NU
    t = 0.0
    while t < seconds:
        gas.advance(step, t)
        gas.frame()
        t += step
    return gas.face_velocity()[0]


def couette(cells: int, offset=None, U: float = 0.1) -> float:
    dx = H / cells
    if offset is None:
        gap, colliders, top = H, None, dict(type="moving_wall", velocity=[U, 0, 0])
    else:
        gap, top = H - 2 * dx - offset * dx, "wall"
        obj = ObjectSpec.model_validate({"name": "slab", "shape": {"type": "box", "size": [10.0, 10.0, 1.0]}})
        colliders = Colliders([collider_shape(obj)], [False])
        pos = np.array([[0.0, 0.0, gap + 0.5]])
        colliders.set_state(pos, np.array([[0, 0, 0, 1.0]]), np.array([[U, 0, 0]]), np.zeros((1, 3)), pos)
    gas = GasSolver(spec(cells, top), colliders)
    try:
        u = settle(gas, gap, 0.1)
    finally:
        gas.close()
    z = (np.arange(cells) + 0.5) * dx
    fluid = z < gap
    return float(np.abs(u[2, 2, fluid] - U * z[fluid] / gap).max() / U)


def poiseuille(cells: int, U: float = 0.02) -> float:
    gas = GasSolver(spec(cells, "no_slip", nx=2 * cells, x_min=dict(type="inflow", velocity=[U, 0, 0])))
    try:
        u = settle(gas, H, 0.5)
    finally:
        gas.close()
    z = (np.arange(cells) + 0.5) * gas.dx
    return float(np.abs(u[3 * cells // 2, 2] - 6 * U * z * (H - z) / H**2).max() / (1.5 * U))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[8, 16, 32])
    args = parser.parse_args()
    rows = []
    for cells in args.cells:
        rows.append((cells, couette(cells), couette(cells, 0.3), couette(cells, 0.8), poiseuille(cells)))
        print(rows[-1], flush=True)
    print("\n| cells across the gap | Couette, moving wall | Couette, slab 0.3 cells off the grid | "
          "Couette, slab 0.8 cells off | Poiseuille |")
    print("|---:|---:|---:|---:|---:|")
    for cells, *errs in rows:
        print(f"| {cells} | " + " | ".join(f"{e:.1e}" for e in errs) + " |")
    order = [math.log2(a[4] / b[4]) for a, b in zip(rows, rows[1:]) if b[4] > 0]
    print("\nPoiseuille order between successive sizes: " + ", ".join(f"{o:.2f}" for o in order))


if __name__ == "__main__":
    main()
