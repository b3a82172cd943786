"""What the field solvers allocate, computed from a spec alone (NumPy only, no Taichi).

One source for both the solvers (which refuse what does not fit) and the scene's
limits check (``hybrid.scene.limits``, which refuses a scene at load time, at the line
that sets the size). The counts follow the arrays the solvers make: keep them in step
when a solver gains or loses an array.
"""

from __future__ import annotations

import math

import numpy as np

from hybrid.fields.seeding import region_cell_span
from hybrid.scene.fields_spec import GasSpec, LiquidSpec, grid_shape

# Gas multigrid: halve (rounding up) until the longest side has COARSEST cells or fewer.
COARSEST = 4
MAX_LEVELS = 8

# Liquid grid: nodes beyond each domain face.
PAD = 2
LIQUID_BYTES_PER_NODE = 16  # velocity (3 f32) + mass (f32)
LIQUID_FLIP_BYTES_PER_NODE = 12  # FLIP's grid velocity before forces (3 f32)
LIQUID_BODY_BYTES_PER_NODE = 12  # with bodies, the grid update's second velocity array (3 f32)
LIQUID_GAP_BYTES_PER_NODE = 8 + 4 + 4  # water with bodies under gravity: fill (i64), shortfall (f32), its body (i32)
LIQUID_BYTES_PER_PARTICLE = {  # x, v (3 f32 each), C (9 f32), then J or F (9 f32), plastic state
    "water": 12 + 12 + 36 + 4,
    "sand": 12 + 12 + 36 + 36 + 4,
    "snow": 12 + 12 + 36 + 36 + 4,
    "jelly": 12 + 12 + 36 + 36,
}
LIQUID_SEEDING_BYTES_PER_PARTICLE = 3 * 8 * 2 + 8  # float64 positions, velocities on the host while seeding, indices


def level_shapes(shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """Grid shapes of the gas multigrid hierarchy, finest first."""
    shapes = [tuple(int(s) for s in shape)]
    while max(shapes[-1]) > COARSEST and len(shapes) < MAX_LEVELS:
        shapes.append(tuple((s + 1) // 2 for s in shapes[-1]))
    return shapes  # type: ignore[return-value]


def gas_bytes(spec: GasSpec) -> int:
    """Bytes of the grid arrays a GasSolver for `spec` allocates (Taichi's runtime not included)."""
    (nx, ny, nz), _ = grid_shape(spec.domain, spec.resolution)
    cells = nx * ny * nz
    faces = (nx + 1) * ny * nz + nx * (ny + 1) * nz + nx * ny * (nz + 1)
    padded_faces = (nx + 3) * (ny + 2) * (nz + 2) + (nx + 2) * (ny + 3) * (nz + 2) + (nx + 2) * (ny + 2) * (nz + 3)
    padded_cells = (nx + 2) * (ny + 2) * (nz + 2)
    total = 2 * padded_faces + faces  # velocity, MacCormack intermediate (with ghosts), result
    total += 3 * (2 * padded_cells + cells)  # density, temperature, fuel: value, intermediate, result
    total += cells  # flame
    total += cells  # fuel from burning objects
    total += cells  # body index (i32)
    total += 2 * 3 * cells + 3 * padded_cells  # cell-centred velocity (confinement force), vorticity, trace velocity
    total += 4 * cells  # pressure, CG residual, search direction, A d
    for level in level_shapes((nx, ny, nz)):
        total += 3 * math.prod(level)  # preconditioned residual, level residual, fluid flags
    total += nx * ny + nx
    return 4 * total


def fill_cell_count(spec: LiquidSpec) -> int:
    """Grid cells whose centre lies in some fill region: the count ``seeding.fill_cells`` gives,
    found one x slice at a time so that it allocates no grid-sized array.

    The limits check runs this before anything is allocated; ``fill_cells`` itself keeps a
    whole-grid owner array and every cell's index and velocity (gigabytes at 512^3).
    Both take each region's cells from ``seeding.region_cell_span``, so the counts agree.
    """
    shape, dx = grid_shape(spec.domain, spec.resolution)
    lo = np.asarray(spec.domain.min, np.float64)
    spans = []
    for region in spec.fill:
        i0, i1 = region_cell_span(region, lo, dx, shape)
        if np.all(i1 >= i0):
            spans.append((i0, i1, region))
    if not spans:
        return 0
    if len(spans) == 1 and spans[0][2].shape == "box":
        return int(np.prod(spans[0][1] - spans[0][0] + 1))
    y0, z0 = (min(int(i0[a]) for i0, _, _ in spans) for a in (1, 2))
    y1, z1 = (max(int(i1[a]) for _, i1, _ in spans) for a in (1, 2))
    total = 0
    for ix in range(min(int(i0[0]) for i0, _, _ in spans), max(int(i1[0]) for _, i1, _ in spans) + 1):
        mask = np.zeros((y1 - y0 + 1, z1 - z0 + 1), bool)
        for i0, i1, region in spans:
            if not i0[0] <= ix <= i1[0]:
                continue
            sub = mask[i0[1] - y0 : i1[1] - y0 + 1, i0[2] - z0 : i1[2] - z0 + 1]
            if region.shape == "box":
                sub[...] = True
                continue
            cx = lo[0] + (np.int64(ix) + 0.5) * dx - region.center[0]
            cy = lo[1] + (np.arange(i0[1], i1[1] + 1) + 0.5) * dx - region.center[1]
            cz = lo[2] + (np.arange(i0[2], i1[2] + 1) + 0.5) * dx - region.center[2]
            sub |= cx**2 + cy[:, None] ** 2 + cz[None, :] ** 2 <= region.radius**2 * (1 + 1e-9)
        total += int(mask.sum())
    return total


_last_count: list = [None, 0]  # (spec, particles): the limits check asks several times about one spec


def particle_count(spec: LiquidSpec) -> int:
    """Particles the fill seeds (``seeding.count_particles``), without allocating the grid."""
    if _last_count[0] is not spec:  # specs are frozen: the same object gives the same count
        _last_count[:] = [spec, fill_cell_count(spec) * spec.particles_per_cell]
    return _last_count[1]


def liquid_bytes(spec: LiquidSpec, bodies: bool = False, gravity: bool = True) -> int:
    """Bytes a LiquidSolver for `spec` needs: particle state, the padded grid, and seeding.

    `bodies`: the liquid has bodies to couple with (a second grid velocity, and for water under
    `gravity` the arrays that weigh the water missing next to them, ``hybrid.fields.mpm``)."""
    shape, _ = grid_shape(spec.domain, spec.resolution)
    nodes = math.prod(n + 1 + 2 * PAD for n in shape)
    cells = math.prod(shape)
    n = particle_count(spec)
    # Twice the state: the CPU's particle-to-grid pass sorts the particles into a second set
    # of arrays (hybrid.fields.mpm, coloured blocks), plus each particle's block index, the block
    # of each sorted slot and, for the solids, the stress matrix that pass makes before the scatter.
    water = spec.material == "water"
    stress = 0 if water else 36
    per_particle = 2 * LIQUID_BYTES_PER_PARTICLE[spec.material] + 4 + 4 + stress + LIQUID_SEEDING_BYTES_PER_PARTICLE
    per_node = LIQUID_BYTES_PER_NODE
    if spec.flip_ratio > 0:
        per_node += LIQUID_FLIP_BYTES_PER_NODE
    if bodies:
        per_node += LIQUID_BODY_BYTES_PER_NODE
        if water and gravity:
            per_node += LIQUID_GAP_BYTES_PER_NODE
    return int(n * per_particle + nodes * per_node + cells * 4)
