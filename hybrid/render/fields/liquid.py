"""The liquid as a water-like surface: particles splatted to a grid, the iso-surface traced per pixel, shaded in HDR.

Surface. Every particle spreads its rest volume over the 3 x 3 x 3 nearest nodes of a
grid of spacing h = ``LiquidFrame.cell_size / refine`` with the quadratic B-spline
weights of MLS-MPM (they sum to 1), divided by h^3: the node value phi is the
liquid's volume fraction, about 1 inside liquid at rest and 0 in air. The surface is
phi = ``ISO`` (half the rest value), phi trilinear between nodes. A node grid covers
the particles' bounding box plus 3 nodes (clipped to the solver's domain plus 3
cells; particles beyond that are not drawn). On the CPU the splat runs on one thread
whatever Taichi's thread count (a few milliseconds for 10^5 particles, next to the
tracing's hundreds), adding floats in particle order, so the same frame gives the
same bits at any thread count; on a GPU the adds are atomic and the last bits vary.

Tracing (Taichi, per pixel): the camera ray (``hybrid.render.fields.rays``'s
parameterisation: t is camera z-depth) is marched through the node grid in steps of
h / 2 up to the opaque surface (G-buffer depth; 0 = background = no limit). The
first crossing into phi >= ISO is refined by bisection (10 halvings, then linear
interpolation): that is the surface point, its outward normal -grad(phi) (central
differences over h / 2). ``liquid_thickness`` sums the path length inside
phi >= ISO, each crossing placed by linear interpolation, up to the opaque surface.
A camera already inside the liquid sees a surface at the near end of its ray,
facing it. Structures thinner than about h / 2 along the ray can be missed.

Velocity. Nodes also hold phi x velocity, so phi-weighted velocity (phi v) / phi at
the surface point is the particles' local mean velocity (exact for a uniform
flow). Its screen motion at camera point (X, Y, Z) with camera-axes velocity
(Vx, Vy, Vz), to first order over one frame of ``frame_dt`` simulated seconds, is
du = fx (Vx - Vz X / Z) / Z dt, dv = fy (Vy - Vz Y / Z) / Z dt pixels; the camera is
taken as still (this is the fluid's own motion, not the camera's).

Shading (float32 linear radiance, like the beauty pass), with v toward the camera
and n the surface normal:

- Fresnel, Schlick with n = 1.33: F = F0 + (1 - F0)(1 - n.v)^5, F0 = ((1.33 - 1) / 2.33)^2;
- reflection: F x the background colour (the sky; the beauty pass's background is
  uniform) plus every light's GGX specular lobe with ``look.roughness`` (the beauty
  shader's specular term with f0 = F0; spot cones as ``hybrid.render.fields.lights``), unshadowed;
- body: what lies behind the surface (the beauty pass and any gas there) seen through
  d metres of liquid (``liquid_thickness``): tinted by color^(d / REFERENCE_DEPTH) per
  channel (``look.color`` decoded to linear light, so a white liquid does not tint),
  and a fraction m = 1 - (1 - ``look.opacity``)^(d / REFERENCE_DEPTH) of it replaced by
  the liquid's own diffusely lit colour, color x (ambient + sum_lights E max(n.l, 0) / pi);
- out = F sky + specular + (1 - F) body. Refraction does not displace what is seen
  through the surface.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import math
from dataclasses import dataclass

import numpy as np

from hybrid.fields.frames import LiquidFrame
from hybrid.render.fields.lights import LIGHT_DIRECTIONAL, LIGHT_ROW, LIGHT_SPOT, spot_cones
from hybrid.render.fields.rays import (
    BIG,
    F32x1,
    F32x2,
    F32x3,
    F32x4,
    camera_params,
    grid_frame,
    lerp_setup,
    pixel_span,
    sample_channel,
    ti,
    to_camera,
)
from hybrid.render.materials import display_to_linear
from hybrid.scene.fields_spec import LiquidLook

ISO = 0.5  # surface at half the rest volume fraction
IOR = 1.33
F0 = ((IOR - 1.0) / (IOR + 1.0)) ** 2
REFERENCE_DEPTH = 0.2  # metres of liquid over which `opacity` and `color` act fully (see the module docstring)
MARGIN = 3  # nodes around the particles' bounding box
MAX_NODES = 256**3  # a larger node grid is coarsened (the splat spacing doubled) until it fits


@ti.kernel
def _splat(pos: F32x2, vel: F32x2, prm: F32x1, grid: F32x4, serial: ti.template()):
    """Quadratic B-spline splat of volume fraction and volume fraction x velocity to the nodes.

    prm: node 0 position (3), spacing h, particle volume / h^3. `serial`: one thread, in
    particle order (the CPU's deterministic sum).
    """
    n, lo, h = grid_frame(grid, prm)
    inv_h = 1.0 / h
    share = prm[4]
    ti.loop_config(serialize=serial)
    for p in range(pos.shape[0]):
        x = (ti.Vector([pos[p, 0], pos[p, 1], pos[p, 2]]) - lo) * inv_h
        base = ti.cast(ti.floor(x - 0.5), ti.i32)
        if (base >= 0).all() and (base + 2 < n).all():
            fx = x - ti.cast(base, ti.f32)
            w = [0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2]
            v = ti.Vector([vel[p, 0], vel[p, 1], vel[p, 2]])
            for a, b, c in ti.static(ti.ndrange(3, 3, 3)):
                wt = w[a][0] * w[b][1] * w[c][2] * share
                i, j, k = base[0] + a, base[1] + b, base[2] + c
                grid[i, j, k, 0] += wt
                grid[i, j, k, 1] += wt * v[0]
                grid[i, j, k, 2] += wt * v[1]
                grid[i, j, k, 3] += wt * v[2]


@ti.func
def _phi(grid: F32x4, p, lo, inv_h, n, ch: ti.template()):
    """Trilinear value of channel `ch` (a static int) of the node grid at world point p."""
    i0, f = lerp_setup((p - lo) * inv_h, n)
    return sample_channel(grid, i0, f, ch)


@ti.kernel
def _trace(grid: F32x4, depth: F32x2, cam: F32x1, prm: F32x1, out: F32x3):
    """Per pixel: surface depth t (BIG: none), world normal (3), thickness (m), screen motion (2, pixels per second).

    prm: node 0 position (3), spacing h, iso value, march step (m).
    """
    n, lo, h = grid_frame(grid, prm)
    inv_h = 1.0 / h
    iso = prm[4]
    step = prm[5]
    hi = lo + h * ti.cast(n - 1, ti.f32)
    for r, c in depth:
        o, d, t_in, t_out = pixel_span(cam, depth, r, c, lo, hi)
        dl = d.norm()
        hit = BIG
        thick = 0.0
        if t_out > t_in:
            steps = ti.max(1, ti.cast(ti.ceil((t_out - t_in) * dl / step), ti.i32))
            dt = (t_out - t_in) / steps
            ta = t_in
            fa = _phi(grid, o + d * ta, lo, inv_h, n, 0)
            if fa >= iso:
                hit = ta
            m = 0
            while m < steps:
                # Where phi is 0 the surface is at least a node away (the splat spreads over 1.5 nodes): stride 2.
                m = ti.min(m + (2 if fa <= 0.0 else 1), steps)
                tb = t_in + m * dt
                fb = _phi(grid, o + d * tb, lo, inv_h, n, 0)
                if fa >= iso and fb >= iso:
                    thick += tb - ta
                elif fa >= iso or fb >= iso:
                    tc = ta + (tb - ta) * (iso - fa) / (fb - fa)
                    if fb >= iso:
                        thick += tb - tc
                        if hit >= BIG:
                            t0, f0, t1, f1 = ta, fa, tb, fb
                            for _ in range(10):
                                tm = 0.5 * (t0 + t1)
                                fm = _phi(grid, o + d * tm, lo, inv_h, n, 0)
                                if fm >= iso:
                                    t1, f1 = tm, fm
                                else:
                                    t0, f0 = tm, fm
                            hit = t0 + (t1 - t0) * (iso - f0) / ti.max(f1 - f0, 1e-12)
                    else:
                        thick += tc - ta
                ta = tb
                fa = fb
        nrm = ti.Vector([0.0, 0.0, 0.0])
        du = 0.0
        dv = 0.0
        if hit < BIG:
            p = o + d * hit
            e = 0.5 * h
            g = ti.Vector([0.0, 0.0, 0.0])
            for a in ti.static(range(3)):
                off = ti.Vector([e if a == 0 else 0.0, e if a == 1 else 0.0, e if a == 2 else 0.0])
                g[a] = _phi(grid, p + off, lo, inv_h, n, 0) - _phi(grid, p - off, lo, inv_h, n, 0)
            nrm = -d / dl
            if g.norm() > 1e-12 and hit > t_in:
                nrm = -g / g.norm()
            phi = _phi(grid, p, lo, inv_h, n, 0)
            if phi > 1e-12:
                v = ti.Vector(
                    [
                        _phi(grid, p, lo, inv_h, n, 1),
                        _phi(grid, p, lo, inv_h, n, 2),
                        _phi(grid, p, lo, inv_h, n, 3),
                    ]
                ) / phi
                # Camera axes, then the derivative of the projection at z = hit.
                vc = to_camera(cam, 3, v)
                du = (cam[12] * vc[0] - (ti.cast(c, ti.f32) + 0.5 - cam[14]) * vc[2]) / hit
                dv = (cam[13] * vc[1] - (ti.cast(r, ti.f32) + 0.5 - cam[15]) * vc[2]) / hit
        out[r, c, 0] = hit
        out[r, c, 1] = nrm[0]
        out[r, c, 2] = nrm[1]
        out[r, c, 3] = nrm[2]
        out[r, c, 4] = thick * dl
        out[r, c, 5] = du
        out[r, c, 6] = dv


@dataclass
class LiquidHits:
    """One frame of liquid seen by the camera (rows top-down).

    mask (H, W) bool: a liquid surface lies in front of the opaque surface;
    split (H, W) float32: that surface's z-depth in metres, ``rays.BIG`` elsewhere;
    normal (H, W, 3) float32: its unit outward normal in world axes (0 elsewhere);
    thickness (H, W) float32: metres of liquid along the ray before the opaque surface;
    motion (H, W, 2) float32: screen motion (dx, dy) of the surface point in pixels per frame.
    """

    mask: np.ndarray
    split: np.ndarray
    normal: np.ndarray
    thickness: np.ndarray
    motion: np.ndarray


def node_grid(frame: LiquidFrame, refine: int = 1) -> tuple[np.ndarray, float, tuple[int, int, int]]:
    """(node 0 position (3,) float64, spacing h in m, node counts) covering the particles (module docstring)."""
    h = float(frame.cell_size) / refine
    pos = np.asarray(frame.position, dtype=np.float64)
    dom_lo = np.asarray(frame.origin, dtype=np.float64)
    dom_hi = dom_lo + float(frame.cell_size) * np.asarray(frame.grid_shape, dtype=np.float64)
    while True:
        lo = np.maximum(pos.min(axis=0) - MARGIN * h, dom_lo - MARGIN * h)
        hi = np.minimum(pos.max(axis=0) + MARGIN * h, dom_hi + MARGIN * h)
        hi = np.maximum(hi, lo + 2 * h)
        shape = tuple(int(s) for s in np.ceil((hi - lo) / h).astype(np.int64) + 1)
        if math.prod(shape) <= MAX_NODES:
            return lo, h, shape  # type: ignore[return-value]
        h *= 2.0


def splat_liquid(frame: LiquidFrame, refine: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """The particles on the node grid (module docstring): (nodes (nx, ny, nz, 4) float32, phi and
    phi x velocity (3); node 0 position (3,); spacing h). The surface is phi = ISO."""
    lo, h, shape = node_grid(frame, refine)
    grid = np.zeros(shape + (4,), np.float32)
    prm = np.array([*lo, h, frame.particle_volume / h**3], np.float32)
    _splat(
        np.ascontiguousarray(frame.position, dtype=np.float32).reshape(-1, 3),
        np.ascontiguousarray(frame.velocity, dtype=np.float32).reshape(-1, 3),
        prm,
        grid,
        ti.lang.impl.current_cfg().arch == ti.cpu,
    )
    return grid, lo, h


class LiquidTracer:
    """Finds and shades the liquid surface for one camera model, look and light set.

    K (3, 3) intrinsics; width, height in pixels; look: ``LiquidLook``; ambient (3,)
    linear and lights (L, LIGHT_ROW) from ``lights.light_table``; sky (3,) linear
    background colour; frame_dt simulated seconds per frame; refine: render nodes per
    solver cell along an axis.
    """

    def __init__(self, K, width: int, height: int, look: LiquidLook, ambient, lights, sky, frame_dt: float, refine: int = 1):
        self.K = np.asarray(K, dtype=np.float64)
        self.width, self.height = int(width), int(height)
        self.look = look
        self.ambient = np.asarray(ambient, dtype=np.float64)
        self.lights = np.asarray(lights, dtype=np.float64).reshape(-1, LIGHT_ROW)
        self.sky = np.asarray(sky, dtype=np.float64)
        self.frame_dt = float(frame_dt)
        self.refine = int(refine)

    def splat(self, frame: LiquidFrame) -> tuple[np.ndarray, np.ndarray, float]:
        """(nodes (nx, ny, nz, 4) float32: phi and phi x velocity (3); node 0 position (3,); spacing h)."""
        return splat_liquid(frame, self.refine)

    def trace(self, frame: LiquidFrame, cam_to_world: np.ndarray, depth: np.ndarray) -> LiquidHits:
        """The liquid surface along every pixel's ray, up to the opaque `depth` (H, W) in m (0 = none)."""
        grid, lo, h = self.splat(frame)
        out = np.empty((self.height, self.width, 7), np.float32)
        prm = np.array([*lo, h, ISO, 0.5 * h], np.float32)
        _trace(grid, np.ascontiguousarray(depth, dtype=np.float32), camera_params(self.K, cam_to_world), prm, out)
        mask = out[..., 0] < BIG
        return LiquidHits(
            mask=mask,
            split=np.where(mask, out[..., 0], np.float32(BIG)).astype(np.float32),
            normal=out[..., 1:4].copy(),
            thickness=out[..., 4].copy(),
            motion=(out[..., 5:7] * np.float32(self.frame_dt)) * mask[..., None],
        )

    def shade(self, hits: LiquidHits, behind: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
        """float32 (H, W, 3): `behind` (linear radiance seen through the liquid) with the liquid surface shaded over it."""
        out = np.array(behind, dtype=np.float32, copy=True)
        rows, cols = np.nonzero(hits.mask)
        if len(rows) == 0:
            return out
        c2w = np.asarray(cam_to_world, dtype=np.float64)
        K = self.K
        ray = np.stack([(cols + 0.5 - K[0, 2]) / K[0, 0], (rows + 0.5 - K[1, 2]) / K[1, 1], np.ones(len(rows))], axis=1)
        ray = ray @ c2w[:3, :3].T
        v = -ray / np.linalg.norm(ray, axis=1, keepdims=True)  # toward the camera
        n = hits.normal[rows, cols].astype(np.float64)
        nv = np.sum(n * v, axis=1)
        n = np.where(nv[:, None] < 0, -n, n)
        nv = np.clip(np.abs(nv), 0.001, 1.0)
        fresnel = F0 + (1.0 - F0) * (1.0 - nv) ** 5
        point = c2w[:3, 3] + ray * hits.split[rows, cols, None].astype(np.float64)

        color = display_to_linear(self.look.color)
        diffuse = np.broadcast_to(self.ambient, n.shape).copy()
        specular = np.zeros_like(n)
        r = float(np.clip(self.look.roughness, 0.04, 1.0))
        k = (r + 1.0) ** 2 / 8.0
        a2 = r**4
        for row in self.lights:
            kind, E = int(row[0]), row[1:4]
            if kind == LIGHT_DIRECTIONAL:
                l = np.broadcast_to(row[4:7], n.shape)
                radiance = np.broadcast_to(E, n.shape)
            else:
                rel = row[4:7] - point
                dist = np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-6)
                l = rel / dist
                radiance = E / dist**2
                if kind == LIGHT_SPOT:
                    radiance = radiance * (spot_cones(row, l) ** 2)[:, None]
            nl_raw = np.sum(n * l, axis=1)
            diffuse += radiance * np.maximum(nl_raw, 0.0)[:, None] / math.pi
            half = l + v
            half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
            nl = np.clip(nl_raw, 0.001, 1.0)
            nh = np.clip(np.sum(n * half, axis=1), 0.0, 1.0)
            vh = np.clip(np.sum(v * half, axis=1), 0.0, 1.0)
            F = F0 + (1.0 - F0) * (1.0 - vh) ** 5
            G = nv / (nv * (1 - k) + k) * nl / (nl * (1 - k) + k)
            D = a2 / (math.pi * (nh**2 * (a2 - 1) + 1) ** 2)
            lit = (nl_raw > 0.0) * nl * F * G * D / (4 * nl * nv + 0.001)
            specular += radiance * lit[:, None]

        depth_ratio = hits.thickness[rows, cols].astype(np.float64)[:, None] / REFERENCE_DEPTH
        tint = np.power(np.maximum(color, 1e-6), depth_ratio)
        murk = 1.0 - np.power(1.0 - float(self.look.opacity), depth_ratio)
        body = out[rows, cols].astype(np.float64) * tint * (1.0 - murk) + murk * color * diffuse
        out[rows, cols] = (fresnel[:, None] * self.sky + specular + (1.0 - fresnel[:, None]) * body).astype(np.float32)
        return out
