"""Camera rays, ray/box spans and grid sampling shared by the gas march and the liquid trace.

Ray parameter. Pixel (row r, column c) looks along d = R (x_n, y_n, 1) with
x_n = (c + 0.5 - cx) / fx, y_n = (r + 0.5 - cy) / fy (``hybrid.camera``'s pixel-centre
convention, R the camera-to-world rotation). A ray point is o + t d, so ``t`` is the
point's camera z-depth in metres, directly comparable with the G-buffer ``depth``
(0 there means background: the ray runs to infinity); a step of dt in t is
dt |d| metres of path.

Grids are sampled trilinearly (``hybrid.fields.stencil``), clamped to the edge nodes.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import numpy as np

from hybrid.fields.backend import _import_taichi
from hybrid.fields.stencil import trilinear_weight

ti = _import_taichi()

BIG = 1.0e30  # "no hit" / "no end" in kernels

# Kernel argument types: float32 / uint8 NumPy arrays of 1 to 4 dimensions.
F32x1, F32x2, F32x3, F32x4 = (ti.types.ndarray(dtype=ti.f32, ndim=n) for n in (1, 2, 3, 4))
U8x3 = ti.types.ndarray(dtype=ti.u8, ndim=3)


def camera_params(K: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """(16,) float32 for the kernels: camera centre (3), camera-to-world rotation row-major (9), fx, fy, cx, cy."""
    c2w = np.asarray(cam_to_world, dtype=np.float64)
    out = np.zeros(16, np.float32)
    out[0:3] = c2w[:3, 3]
    out[3:12] = c2w[:3, :3].reshape(-1)
    out[12:16] = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return out


@ti.func
def cam_ray(cam: F32x1, r: ti.i32, c: ti.i32):
    """World origin and direction (z-depth parameterised: camera z of o + t d is t) of pixel (r, c)."""
    xn = (ti.cast(c, ti.f32) + 0.5 - cam[14]) / cam[12]
    yn = (ti.cast(r, ti.f32) + 0.5 - cam[15]) / cam[13]
    o = ti.Vector([cam[0], cam[1], cam[2]])
    d = ti.Vector(
        [
            cam[3] * xn + cam[4] * yn + cam[5],
            cam[6] * xn + cam[7] * yn + cam[8],
            cam[9] * xn + cam[10] * yn + cam[11],
        ]
    )
    return o, d


@ti.func
def to_camera(m: F32x1, at: ti.template(), v):
    """World vector v in camera axes, R^T v, with R the camera-to-world rotation stored row-major in m[at:at + 9]."""
    return ti.Vector(
        [
            m[at] * v[0] + m[at + 3] * v[1] + m[at + 6] * v[2],
            m[at + 1] * v[0] + m[at + 4] * v[1] + m[at + 7] * v[2],
            m[at + 2] * v[0] + m[at + 5] * v[1] + m[at + 8] * v[2],
        ]
    )


@ti.func
def box_span(o, d, lo, hi):
    """(t_in, t_out) of the ray o + t d through the box [lo, hi]; t_in > t_out when it misses."""
    t_in = -BIG
    t_out = BIG
    for a in ti.static(range(3)):
        if ti.abs(d[a]) > 1e-12:
            t0 = (lo[a] - o[a]) / d[a]
            t1 = (hi[a] - o[a]) / d[a]
            t_in = ti.max(t_in, ti.min(t0, t1))
            t_out = ti.min(t_out, ti.max(t0, t1))
        elif o[a] < lo[a] or o[a] > hi[a]:
            t_in = BIG
            t_out = -BIG
    return t_in, t_out


@ti.func
def grid_frame(grid: ti.template(), prm: F32x1):
    """(cells or nodes per axis of `grid`'s first three axes, grid origin prm[0:3] (m), spacing prm[3] (m))."""
    return ti.Vector([grid.shape[0], grid.shape[1], grid.shape[2]]), ti.Vector([prm[0], prm[1], prm[2]]), prm[3]


@ti.func
def pixel_span(cam: F32x1, depth: F32x2, r, c, lo, hi):
    """Pixel (r, c)'s ray o + t d (``cam_ray``) and the span (t_in, t_out) of it inside the box [lo, hi],
    in front of the camera and of the opaque `depth` (0: none); t_in >= t_out when there is none."""
    o, d = cam_ray(cam, r, c)
    t_in, t_out = box_span(o, d, lo, hi)
    t_in = ti.max(t_in, 0.0)
    if depth[r, c] > 0.0:
        t_out = ti.min(t_out, depth[r, c])
    return o, d, t_in, t_out


@ti.func
def lerp_setup(g, n):
    """Trilinear corner and weights of grid coordinate g (in cells, node 0 at 0), clamped to the edge nodes."""
    gc = ti.math.clamp(g, 0.0, ti.cast(n - 1, ti.f32))
    i0 = ti.min(ti.cast(ti.floor(gc), ti.i32), n - 2)
    return i0, gc - ti.cast(i0, ti.f32)


@ti.func
def sample(grid: ti.template(), i0, f):
    """Trilinear value of the 3-D array `grid` over the stencil at corner i0 with fraction f (``lerp_setup``)."""
    v = 0.0
    for dx, dy, dz in ti.static(ti.ndrange(2, 2, 2)):
        v += trilinear_weight(ti.Vector([dx, dy, dz]), f) * grid[i0[0] + dx, i0[1] + dy, i0[2] + dz]
    return v


@ti.func
def sample_channel(grid: ti.template(), i0, f, ch: ti.template()):
    """Trilinear value of channel `ch` (static) of the 4-D array `grid` (x, y, z, channel), as ``sample``."""
    v = 0.0
    for dx, dy, dz in ti.static(ti.ndrange(2, 2, 2)):
        v += trilinear_weight(ti.Vector([dx, dy, dz]), f) * grid[i0[0] + dx, i0[1] + dy, i0[2] + dz, ch]
    return v
