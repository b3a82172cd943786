"""Index helpers shared by the grid kernels (gas solver, pressure solve, field rendering).

The trilinear stencil: a sample a fraction ``fr`` (per axis, in [0, 1]) of the way from
the corner cell (or node) ``base`` of its 2 x 2 x 2 block reads corner ``base + o``
(``o`` 0 or 1 per axis) with weight prod_axes (fr if o else 1 - fr); the weights sum
to 1. Callers choose the order the corners are summed in (it sets the last bits).
"""

# No `from __future__ import annotations`: Taichi reads ti.func annotations as objects.
from hybrid.fields.backend import _import_taichi

ti = _import_taichi()


def face_shapes(shape) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """The MAC grid's face-array shapes for `shape` (nx, ny, nz) cells: u, v, w."""
    nx, ny, nz = (int(s) for s in shape)
    return (nx + 1, ny, nz), (nx, ny + 1, nz), (nx, ny, nz + 1)


@ti.func
def unit(a: ti.template()):
    """The integer unit vector along axis `a` (static)."""
    return ti.Vector.unit(3, a, ti.i32)


@ti.func
def face_grid(a: ti.template(), I):
    """Grid position (cell units, cell centres at i + 0.5) of face I of axis a."""
    g = I + 0.5
    g[a] -= 0.5
    return g


@ti.func
def corner(c):
    """Offset (0 or 1 per axis) of corner `c` (0..7, x fastest) of a 2 x 2 x 2 block."""
    return ti.Vector([c & 1, (c >> 1) & 1, (c >> 2) & 1])


@ti.func
def trilinear_weight(o, fr):
    """Trilinear weight of the corner at offset `o` (0 or 1 per axis) for fraction `fr` (3,)."""
    wv = o * fr + (1 - o) * (1.0 - fr)
    return wv[0] * wv[1] * wv[2]
