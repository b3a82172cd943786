"""What the field solvers allocate, computed from a spec alone (NumPy only, no Taichi).

One source for both the solvers (which refuse what does not fit) and the scene's
limits check (``hybrid.scene.limits``, which refuses a scene at load time, at the line
that sets the size). The counts follow the arrays the solvers make: keep them in step
when a solver gains or loses an array.
"""

from __future__ import annotations

import math

from hybrid.scene.fields_spec import GasSpec, LiquidSpec, grid_shape

# Gas multigrid: halve (rounding up) until the longest side has COARSEST cells or fewer.
COARSEST = 4
MAX_LEVELS = 8

# Liquid grid: nodes beyond each domain face.
PAD = 2
LIQUID_BYTES_PER_NODE = 16  # velocity (3 f32) + mass (f32)
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
    total += cells  # body index (i32)
    total += 2 * 3 * cells + 3 * padded_cells  # cell-centred velocity (confinement force), vorticity, trace velocity
    total += 4 * cells  # pressure, CG residual, search direction, A d
    for level in level_shapes((nx, ny, nz)):
        total += 3 * math.prod(level)  # preconditioned residual, level residual, fluid flags
    total += nx * ny + nx
    return 4 * total


def liquid_bytes(spec: LiquidSpec) -> int:
    """Bytes a LiquidSolver for `spec` needs: particle state, the padded grid, and seeding."""
    from hybrid.fields.seeding import count_particles

    shape, _ = grid_shape(spec.domain, spec.resolution)
    nodes = math.prod(n + 1 + 2 * PAD for n in shape)
    cells = math.prod(shape)
    n = count_particles(spec)
    per_particle = LIQUID_BYTES_PER_PARTICLE[spec.material] + LIQUID_SEEDING_BYTES_PER_PARTICLE
    return int(n * per_particle + nodes * LIQUID_BYTES_PER_NODE + cells * 4)
