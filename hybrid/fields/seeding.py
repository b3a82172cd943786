"""Which grid cells a liquid's fill covers (NumPy only, no Taichi).

Shared by the solver, which seeds ``particles_per_cell`` particles in each of these
cells, and by the scene's limits check, which counts them before anything runs.
"""

from __future__ import annotations

import numpy as np

from hybrid.scene.fields_spec import LiquidSpec, grid_shape


def fill_cells(spec: LiquidSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells (M, 3) int64 whose centre lies in a fill region, C-ordered, each one's velocity (M, 3),
    and the grid's mask of filled cells (nx, ny, nz) bool.

    A cell in several regions takes the first region's velocity. Cells outside the
    grid are dropped.
    """
    shape, dx = grid_shape(spec.domain, spec.resolution)
    lo = np.asarray(spec.domain.min, np.float64)
    owner = np.full(shape, -1, np.int32)
    for r, region in enumerate(spec.fill):
        i0, i1 = region_cell_span(region, lo, dx, shape)
        if np.any(i1 < i0):
            continue
        axes = [np.arange(i0[a], i1[a] + 1) for a in range(3)]
        sub = owner[i0[0] : i1[0] + 1, i0[1] : i1[1] + 1, i0[2] : i1[2] + 1]
        inside = np.ones(sub.shape, bool)
        if region.shape == "sphere":
            cx, cy, cz = (lo[a] + (axes[a] + 0.5) * dx - region.center[a] for a in range(3))
            d2 = cx[:, None, None] ** 2 + cy[None, :, None] ** 2 + cz[None, None, :] ** 2
            inside = d2 <= region.radius**2 * (1 + 1e-9)
        sub[inside & (sub < 0)] = r
    cells = np.argwhere(owner >= 0)
    velocities = np.asarray([region.velocity for region in spec.fill], np.float64)
    return cells, velocities[owner[tuple(cells.T)]], owner >= 0


def count_particles(spec: LiquidSpec) -> int:
    """The exact number of particles the fill seeds: particles_per_cell x the grid cells whose
    centre lies inside some fill region (and inside the grid)."""
    return int(len(fill_cells(spec)[0])) * spec.particles_per_cell


def region_cell_span(region, lo: np.ndarray, dx: float, shape) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive index bounds (i0, i1), int64 (3,), of the cells whose centre lies in the fill
    region's bounding box; empty along an axis where i1 < i0. Shared with the memory estimate
    (``hybrid.fields.memory.fill_cell_count``) so that both count exactly the same cells."""
    if region.shape == "box":
        rmin, rmax = np.asarray(region.min, float), np.asarray(region.max, float)
    else:
        c = np.asarray(region.center, float)
        rmin, rmax = c - region.radius, c + region.radius
    # Cells with centre lo + (i + 0.5) dx in [rmin, rmax]: ceil(a) <= i <= floor(b).
    i0 = np.maximum(np.ceil((rmin - lo) / dx - 0.5 - 1e-9).astype(np.int64), 0)
    i1 = np.minimum(np.floor((rmax - lo) / dx - 0.5 + 1e-9).astype(np.int64), np.asarray(shape) - 1)
    return i0, i1
