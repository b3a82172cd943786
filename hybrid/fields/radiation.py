"""Radiant heat from the flames onto surfaces: what lets fire jump a gap the hot gas does not cross.

The gas is treated as optically thin and grey: a cell at absolute temperature T emits

    P = 4 kappa sigma (T^4 - T_a^4) V        (W; kappa the flames' absorption coefficient,
                                              ``fields.gas.combustion.radiation``, 1/m)

evenly in every direction, so a surface point at distance r whose normal makes angle theta with
the direction to the cell receives P cos(theta) / (4 pi r^2) W/m^2 from it. The incident flux
of a point is that sum over the emitting cells it can see: a cell hides behind a body when the
straight line to it crosses a solid gas cell (marched at half-cell steps). Net of what the
surface radiates back, at room temperature: the ambient's own share is subtracted (T_a^4).

Three approximations, all on the scale of the grid. The cells are summed in blocks of
``CLUSTER``^3, each a point source of its total power at its power-weighted centre (8 times
fewer sources to see: a block's own extent changes the flux at distance r by O((dx / r)^2),
nothing for a full block of equal cells, whose cubic symmetry has no quadrupole). The distance
is softened by half a block, r^2 -> r^2 + dx^2 (blocks of two cells), so a point next to a flame
gets about the flux of the flame beside it and not the singular point-source value. Blocks that
emit less than ``SOURCE_CUTOFF`` of the brightest block's power are left out (next to a flame at
1700 K above ambient, anything under about 120 K above ambient), which keeps the sum to the
flames. Self-absorption is left out (optically thin: kappa x the flame's depth << 1).

The flux is summed per point over the cells in index order on one thread each, so it has the
same bits run to run and at any thread count.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import math
from typing import Optional

import numpy as np

from hybrid.fields.backend import _import_taichi

ti = _import_taichi()

STEFAN_BOLTZMANN = 5.670374419e-8  # W / (m^2 K^4)
SOURCE_CUTOFF = 1e-3  # blocks emitting less than this share of the brightest block are left out
CLUSTER = 2  # emitters are blocks of CLUSTER^3 cells (each summed into one point source)

Vec3Arr = ti.types.ndarray(dtype=ti.math.vec3, ndim=1)
F32Arr = ti.types.ndarray(dtype=ti.f32, ndim=1)
I8Grid = ti.types.ndarray(dtype=ti.i8, ndim=3)


@ti.func
def _visible(a, b, solid: ti.template(), origin, dx, shape):
    """Whether the segment from a to b (world positions) stays out of solid gas cells, the cells
    holding a and b themselves excepted; sampled at half-cell steps."""
    d = b - a
    steps = ti.cast(ti.ceil(d.norm() / (0.5 * dx)), ti.i32)
    ia = ti.cast(ti.floor((a - origin) / dx), ti.i32)
    ib = ti.cast(ti.floor((b - origin) / dx), ti.i32)
    seen = True
    k = 1
    while k < steps:
        x = a + d * (k / steps)
        c = ti.cast(ti.floor((x - origin) / dx), ti.i32)
        if (c >= 0).all() and (c < shape).all() and (c != ia).any() and (c != ib).any():
            if solid[c[0], c[1], c[2]] != 0:
                seen = False
                break
        k += 1
    return seen


@ti.kernel
def _flux(
    src: Vec3Arr, power: F32Arr, n_src: ti.i32, pos: Vec3Arr, nrm: Vec3Arr, eye: Vec3Arr, out: F32Arr,
    solid: I8Grid, origin: ti.math.vec3, dx: ti.f32, shape: ti.math.ivec3,
):
    soft = 0.25 * (CLUSTER * dx) ** 2
    for i in range(pos.shape[0]):
        p = pos[i]
        n = nrm[i]
        q = 0.0
        for s in range(n_src):
            d = src[s] - p
            c = n.dot(d)
            if c > 0:
                r2 = d.norm_sqr()
                term = power[s] * c / (4.0 * math.pi * ti.sqrt(r2) * (r2 + soft))
                if _visible(eye[i], src[s], solid, origin, dx, shape):
                    q += term
        out[i] = q


def emitters(
    temperature: np.ndarray, origin: np.ndarray, dx: float, ambient: float, absorption: float
) -> tuple[np.ndarray, np.ndarray]:
    """The emitters of a gas temperature grid (kelvin above `ambient`, absolute kelvin): blocks of
    CLUSTER^3 cells, each its cells' total power (W) at their power-weighted centre; their centres
    (M, 3) and powers (M,) in block-index order (``SOURCE_CUTOFF`` applies to the blocks)."""
    t = np.maximum(np.asarray(temperature, dtype=np.float64), 0.0) + ambient
    power = 4.0 * absorption * STEFAN_BOLTZMANN * (t**4 - ambient**4) * dx**3
    if float(power.max(initial=0.0)) <= 0.0:
        return np.zeros((0, 3)), np.zeros(0)
    k = CLUSTER
    blocks = [-(-n // k) for n in power.shape]
    padded = np.zeros([b * k for b in blocks])
    padded[tuple(slice(0, n) for n in power.shape)] = power
    split = padded.reshape(blocks[0], k, blocks[1], k, blocks[2], k)
    total = split.sum(axis=(1, 3, 5))
    keep = np.argwhere(total >= SOURCE_CUTOFF * float(total.max()))
    sub = split[keep[:, 0], :, keep[:, 1], :, keep[:, 2], :]  # (M, k, k, k)
    weights = sub.reshape(len(keep), -1)
    offsets = (np.indices((k, k, k)).reshape(3, -1).T + 0.5) * dx  # cell centres within a block
    mass = weights.sum(axis=1)
    centre = np.asarray(origin, dtype=np.float64) + keep * (k * dx) + (weights @ offsets) / mass[:, None]
    return centre, mass


def incident_flux(
    centres: np.ndarray, powers: np.ndarray, points: np.ndarray, normals: np.ndarray, solid: np.ndarray,
    origin: np.ndarray, dx: float, eyes: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Radiant flux (W/m^2) onto surface points (N, 3) with unit outward normals (N, 3) from the
    emitting cells (``emitters``), hidden by the `solid` cells of the grid (nx, ny, nz) with
    corner `origin` and cell `dx`. `eyes`: where each point's sight lines start (default: half a
    cell out along its normal, outside its own body)."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n == 0 or len(powers) == 0:
        return np.zeros(n)
    normals = np.asarray(normals, dtype=np.float64)
    if eyes is None:
        eyes = points + 0.5 * dx * normals
    arr = {}
    for name, data, dtype in (
        ("src", centres, ti.math.vec3), ("pos", points, ti.math.vec3), ("nrm", normals, ti.math.vec3),
        ("eye", eyes, ti.math.vec3),
    ):
        arr[name] = ti.ndarray(dtype, len(data))
        arr[name].from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    power = ti.ndarray(ti.f32, len(powers))
    power.from_numpy(np.asarray(powers, dtype=np.float32))
    grid = ti.ndarray(ti.i8, tuple(int(s) for s in solid.shape))
    grid.from_numpy(np.ascontiguousarray(solid, dtype=np.int8))
    out = ti.ndarray(ti.f32, n)
    _flux(
        arr["src"], power, len(powers), arr["pos"], arr["nrm"], arr["eye"], out, grid,
        tuple(float(o) for o in origin), float(dx), tuple(int(s) for s in solid.shape),
    )
    return out.to_numpy().astype(np.float64)
