"""Heat haze: hot air bends the view rays, so what lies behind a flame shimmers.

Air's refractive index follows its density (Gladstone-Dale, n - 1 = K rho with K =
2.26e-4 m^3/kg), and at constant pressure its density follows 1 / T (ideal gas), so
n - 1 = K p / (R T) = ``INDEX_CONSTANT`` / T with T the absolute temperature: 2.72e-4
at 20 C, a third of that at 600 C.

First method (screen space, documented as such): a view ray through hot air turns by
the angle eps = integral of grad n across the ray (small angles, n ~ 1: the paraxial
ray equation). The grid's index is differenced at cell centres (central differences,
one-sided at the grid's faces) and its gradient sampled trilinearly along every
pixel's ray (steps of at most a cell, ending at the opaque surface). The ray then
meets the surface at depth z_b displaced sideways by eps x (path length from the
bend to the surface), where the bend sits at z_h, the |grad n|-weighted mean depth
along the ray. Seen from the camera that is a shift on the image of

    (du, dv) = (fx eps_x, fy eps_y) |d| (z_b - z_h) / z_b

pixels (eps in camera axes, |d| the ray's length per unit depth; for the background,
z_b infinite, the factor is |d|). The beauty frame at a pixel shows the frame at the
pixel plus that shift (bilinear). Approximations: the path is straight for sampling
the gradient (the bend is a fraction of a pixel per cell); only the beauty frame is
bent: the exact geometric buffers (depth, normal, instance, albedo, flow) describe the
surfaces as they are.

``heat_haze`` (H, W, 2) float32 holds the shift in pixels; 0 wherever the ray
crosses air at ambient temperature only (the gradient is exactly 0 there).
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import numpy as np

from hybrid.fields.frames import GasFrame
from hybrid.render.fields.rays import F32x1, F32x2, F32x3, F32x4, camera_params, grid_frame, lerp_setup, pixel_span, sample_channel, ti

GLADSTONE_DALE = 2.26e-4  # m^3/kg, air in visible light
AIR_GAS_CONSTANT = 287.05  # J / (kg K)
PRESSURE = 101325.0  # Pa
INDEX_CONSTANT = GLADSTONE_DALE * PRESSURE / AIR_GAS_CONSTANT  # K: n - 1 = INDEX_CONSTANT / T


def index_gradient(gas: GasFrame) -> np.ndarray:
    """float32 (nx, ny, nz, 3): grad n per metre at cell centres (central differences, one-sided at the faces)."""
    kelvin = gas.ambient_temperature + np.asarray(gas.temperature, dtype=np.float64)
    n1 = INDEX_CONSTANT / np.maximum(kelvin, 1.0)
    grads = []
    for axis in range(3):
        if n1.shape[axis] < 2:
            grads.append(np.zeros_like(n1))
        else:
            grads.append(np.gradient(n1, gas.cell_size, axis=axis))
    return np.ascontiguousarray(np.stack(grads, axis=-1), dtype=np.float32)


@ti.kernel
def _haze(grad: F32x4, depth: F32x2, cam: F32x1, prm: F32x1, out: F32x3):
    """Per pixel: the shift (du, dv) in pixels (see the module docstring). prm: origin (3), cell size."""
    n, lo, h = grid_frame(grad, prm)
    inv_h = 1.0 / h
    hi = lo + h * ti.cast(n, ti.f32)
    for r, c in depth:
        o, d, t_in, t_out = pixel_span(cam, depth, r, c, lo, hi)
        du = 0.0
        dv = 0.0
        if t_out > t_in:
            dl = d.norm()
            dn = d / dl
            steps = ti.max(1, ti.cast(ti.ceil((t_out - t_in) * dl / h), ti.i32))
            dt = (t_out - t_in) / steps
            ds = dt * dl
            eps = ti.Vector([0.0, 0.0, 0.0])
            wsum = 0.0
            tsum = 0.0
            for m in range(steps):
                t = t_in + (m + 0.5) * dt
                p = o + d * t
                i0, f = lerp_setup((p - lo) * inv_h - 0.5, n)
                g = ti.Vector([sample_channel(grad, i0, f, 0), sample_channel(grad, i0, f, 1), sample_channel(grad, i0, f, 2)])
                g_perp = g - g.dot(dn) * dn
                eps += g_perp * ds
                w = g_perp.norm() * ds
                wsum += w
                tsum += w * t
            if wsum > 0.0:
                t_h = tsum / wsum
                lever = dl  # background: the surface is infinitely far
                if depth[r, c] > 0.0:
                    lever = dl * ti.max(depth[r, c] - t_h, 0.0) / depth[r, c]
                # eps in camera axes: R^T eps (R row-major in cam[3:12]).
                ex = cam[3] * eps[0] + cam[6] * eps[1] + cam[9] * eps[2]
                ey = cam[4] * eps[0] + cam[7] * eps[1] + cam[10] * eps[2]
                du = cam[12] * ex * lever
                dv = cam[13] * ey * lever
        out[r, c, 0] = du
        out[r, c, 1] = dv


def haze_shift(gas: GasFrame, K: np.ndarray, cam_to_world: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """float32 (H, W, 2): every pixel's shift (du, dv) in pixels (the module docstring)."""
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    out = np.zeros(depth.shape + (2,), np.float32)
    grad = index_gradient(gas)
    if not grad.any():
        return out
    prm = np.array([*np.asarray(gas.origin, dtype=np.float64), gas.cell_size], np.float32)
    _haze(grad, depth, camera_params(K, cam_to_world), prm, out)
    return out


def bend(frame: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """`frame` (H, W, C) seen through the haze: out[r, c] = frame at (r + dv, c + du), bilinear, clamped at the edges."""
    frame = np.asarray(frame)
    h, w = frame.shape[:2]
    if not np.any(shift):
        return frame
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    y = np.clip(rows + shift[..., 1], 0.0, h - 1.0)
    x = np.clip(cols + shift[..., 0], 0.0, w - 1.0)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2 if h > 1 else 0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2 if w > 1 else 0)
    fy = (y - y0)[..., None]
    fx = (x - x0)[..., None]
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    f = frame.astype(np.float64)
    out = (f[y0, x0] * (1 - fx) + f[y0, x1] * fx) * (1 - fy) + (f[y1, x0] * (1 - fx) + f[y1, x1] * fx) * fy
    return out.astype(frame.dtype)
