"""Smoke and fire in the beauty pass: the gas grid ray marched per pixel (``GasMarcher``).

``GasMarcher`` gives per pixel the transmittance and in-scattered plus emitted
radiance of the gas in front of and behind a split depth (the liquid surface), and
the gas buffers. Rays are ``hybrid.render.fields.rays``'s (t is camera z-depth).

Gas optics (units: metres, kelvin, linear radiance as the beauty pass):

- extinction sigma = ``look.extinction`` x density (1/m); transmittance T = exp(-int sigma ds);
- the grid is cell-centred and sampled trilinearly, clamped to the edge cells
  inside the grid's box and zero outside it, so a uniform grid is uniform up to its
  faces and a march integrates it exactly (midpoint rule over equal steps that end
  exactly at the box faces, the opaque depth and the split depth);
- in-scattering per unit sigma: S = albedo (ambient + sum_lights p E_l T_l), with
  albedo ``look.color`` decoded to linear light like surface colours, ambient the
  scene's summed ambient lights (unshadowed: a dense bank under ambient light alone
  shows albedo x ambient, as a surface does), E_l a light's colour x intensity (over
  distance^2 for point and spot lights, times the spot cone factor of the beauty
  shader, ``hybrid.render.fields.lights``), p = 1 / pi an isotropic phase function
  normalised like a Lambertian surface (single scattering alone, 1 / (4 pi), leaves
  thick smoke several times too dark; the factor 4 stands in for multiple
  scattering), and T_l the transmittance toward the light, precomputed per frame for
  every cell: for directional lights by one sweep through the grid from the light's
  side (``directional_optical_depth``, linear in the cell count), for point and spot
  lights by marching from every cell of a copy of the grid coarsened to at most
  ``POINT_LIGHT_CELLS`` cells a side (block means) toward the light (one sample
  per coarse cell, to the grid's box or the light), read back trilinearly. Cells of the gas frame's ``solid`` mask
  (rigid bodies) block the light, so bodies inside the domain shadow the smoke;
  bodies outside the domain do not (the shadow maps of the beauty pass are not
  read here);
- fire: burning cells emit (per metre of path) ``look.flame_intensity`` x
  ``FLAME_GAIN`` x flame x (K / ``FLAME_REFERENCE_K``)^4 x chroma(K), with K =
  ambient temperature + temperature above ambient in kelvin and chroma the colour
  of a black body at K (Wien's law at 610, 550 and 465 nm, scaled to unit
  luminance): deep red at 1000 K, orange at 1500 K, yellow toward 3000 K;
  R > G > B below about 5000 K;
- each step adds (J / sigma)(1 - exp(-sigma ds)) T_before with J = sigma S +
  emission (exact for a homogeneous step), so large steps never overshoot.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hybrid.fields.frames import GasFrame
from hybrid.fields.stencil import trilinear_weight
from hybrid.render.fields.lights import LIGHT_DIRECTIONAL, LIGHT_ROW, LIGHT_SPOT, spot_cone
from hybrid.render.fields.rays import (
    BIG,
    F32x1,
    F32x2,
    F32x3,
    F32x4,
    U8x3,
    box_span,
    camera_params,
    grid_frame,
    lerp_setup,
    pixel_span,
    sample,
    ti,
    to_camera,
)
from hybrid.render.materials import display_to_linear
from hybrid.scene.fields_spec import GasLook

PHASE = 1.0 / math.pi  # isotropic, normalised like a Lambertian surface (see the module docstring)
FLAME_GAIN = 5.0  # radiance per metre per unit of flame at FLAME_REFERENCE_K and flame_intensity 1
FLAME_REFERENCE_K = 1500.0
SOLID_TAU = 50.0  # optical depth of a cell inside a rigid body, for light (a light march stops there)

# Per-cell channels of the marched grid: density, source J (3), temperature above ambient, density x velocity
# in camera axes (3).
CHANNELS = 8


@ti.func
def _chroma(kelvin):
    """Black-body colour at `kelvin` (Wien's law at 610, 550, 465 nm), scaled to unit Rec. 709 luminance."""
    c2 = 1.4388e-2  # m K
    x = c2 / ti.max(kelvin, 100.0)
    # Relative to the green channel: (lg / l)^5 exp(-x (1 / l - 1 / lg)).
    wr = ti.pow(550.0 / 610.0, 5.0) * ti.exp(-x * (1.0 / 610e-9 - 1.0 / 550e-9))
    wb = ti.pow(550.0 / 465.0, 5.0) * ti.exp(-x * (1.0 / 465e-9 - 1.0 / 550e-9))
    y = 0.2126 * wr + 0.7152 + 0.0722 * wb
    return ti.Vector([wr, 1.0, wb]) / y


def blackbody_chroma(kelvin: np.ndarray) -> np.ndarray:
    """``_chroma`` in NumPy: (..., 3) black-body colour at `kelvin` (...), unit Rec. 709 luminance."""
    c2 = 1.4388e-2  # m K
    x = c2 / np.maximum(np.asarray(kelvin, dtype=np.float64), 100.0)
    wr = (550.0 / 610.0) ** 5 * np.exp(-x * (1.0 / 610e-9 - 1.0 / 550e-9))
    wb = (550.0 / 465.0) ** 5 * np.exp(-x * (1.0 / 465e-9 - 1.0 / 550e-9))
    y = 0.2126 * wr + 0.7152 + 0.0722 * wb
    return np.stack([wr, np.ones_like(wr), wb], axis=-1) / y[..., None]


def flame_emission(gas: GasFrame, look: GasLook) -> np.ndarray:
    """float32 (nx, ny, nz, 3) linear radiance emitted per metre of path by each cell: the glow of the module docstring."""
    burn = np.maximum(np.asarray(gas.flame, dtype=np.float64), 0.0)
    kelvin = gas.ambient_temperature + np.maximum(np.asarray(gas.temperature, dtype=np.float64), 0.0)
    glow = look.flame_intensity * FLAME_GAIN * burn * (kelvin / FLAME_REFERENCE_K) ** 4
    return (glow[..., None] * blackbody_chroma(kelvin)).astype(np.float32)


@ti.kernel
def _point_tau(sigma: F32x3, solid: U8x3, prm: F32x1, out: F32x3):
    """Optical depth from every cell centre of a (coarse) extinction grid to a point, or to the box toward it.

    prm: origin (3), cell size, point (3). sigma in 1/m; solid cells block (``SOLID_TAU``).
    """
    n, lo, h = grid_frame(sigma, prm)
    inv_h = 1.0 / h
    q = ti.Vector([prm[4], prm[5], prm[6]])
    hi = lo + h * ti.cast(n, ti.f32)
    for i, j, k in sigma:
        centre = lo + h * (ti.Vector([i, j, k]) + 0.5)
        rel = q - centre
        dist = rel.norm()
        tau = 0.0
        if dist > 1e-6:
            to_light = rel / dist
            _, t_exit = box_span(centre, to_light, lo, hi)
            span = ti.min(t_exit, dist)
            steps = ti.max(1, ti.cast(ti.ceil(span * inv_h), ti.i32))
            ds = span / steps
            for m in range(steps):
                p = centre + to_light * ((m + 0.5) * ds)
                cell = ti.math.clamp(ti.cast(ti.floor((p - lo) * inv_h), ti.i32), 0, n - 1)
                if solid[cell[0], cell[1], cell[2]] != 0 and (cell - ti.Vector([i, j, k])).any():
                    tau = SOLID_TAU
                else:
                    i0, f = lerp_setup((p - lo) * inv_h - 0.5, n)
                    tau += sample(sigma, i0, f) * ds
                if tau >= SOLID_TAU:
                    break
        out[i, j, k] = ti.min(tau, SOLID_TAU)


@ti.kernel
def _gas_cells(
    density: F32x3, temperature: F32x3, flame: F32x3, velocity: F32x4, near: U8x3, lights: F32x2, n_lights: ti.i32,
    tau_dir: F32x4, tau_pt: F32x4, coarse: ti.i32, prm: F32x1, out: F32x4,
):
    """Per cell: density, source J (in-scattered + emitted radiance per metre), temperature, density x velocity (camera axes).

    near: 1 where the cell or a neighbour holds smoke (where a trilinear sample can need its light).
    tau_dir[q]: optical depth from every cell centre toward the q-th directional light
    (``directional_optical_depth``); tau_pt[q]: the same toward the q-th point or spot
    light on a grid `coarse` times coarser (``_point_tau``), read trilinearly.
    prm: origin (3), cell size, extinction, albedo (3), ambient (3), flame gain, ambient kelvin, R row-major (9).
    """
    n, lo, h = grid_frame(density, prm)
    ext = prm[4]
    albedo = ti.Vector([prm[5], prm[6], prm[7]])
    ambient = ti.Vector([prm[8], prm[9], prm[10]])
    for i, j, k in density:
        rho = density[i, j, k]
        source = ti.Vector([0.0, 0.0, 0.0])
        if near[i, j, k] != 0:
            centre = lo + h * (ti.Vector([i, j, k]) + 0.5)
            incoming = ambient
            n_dir = 0
            n_pt = 0
            nc = ti.Vector([tau_pt.shape[1], tau_pt.shape[2], tau_pt.shape[3]])
            for l in range(n_lights):
                kind = ti.cast(lights[l, 0], ti.i32)
                E = ti.Vector([lights[l, 1], lights[l, 2], lights[l, 3]])
                q = ti.Vector([lights[l, 4], lights[l, 5], lights[l, 6]])
                if kind == LIGHT_DIRECTIONAL:
                    incoming += PHASE * E * ti.exp(-tau_dir[n_dir, i, j, k])
                    n_dir += 1
                else:
                    rel = q - centre
                    dist = ti.max(rel.norm(), 1e-6)
                    to_light = rel / dist
                    E = E / (dist * dist)
                    if kind == LIGHT_SPOT:
                        cone = spot_cone(lights, l, to_light)
                        E = E * cone * cone
                    # Trilinear in the coarse grid (cell centres at (m + 0.5) coarse cells).
                    gi, gf = lerp_setup((ti.Vector([i, j, k]) + 0.5) / coarse - 0.5, nc)
                    tau = 0.0
                    for dx, dy, dz in ti.static(ti.ndrange(2, 2, 2)):
                        w = trilinear_weight(ti.Vector([dx, dy, dz]), gf)
                        tau += w * tau_pt[n_pt, gi[0] + dx, gi[1] + dy, gi[2] + dz]
                    n_pt += 1
                    incoming += PHASE * E * ti.exp(-tau)
            source = ext * rho * albedo * incoming
        burn = flame[i, j, k]
        dT = temperature[i, j, k]
        if burn > 0.0:
            kelvin = prm[12] + ti.max(dT, 0.0)
            glow = prm[11] * burn * ti.pow(kelvin / FLAME_REFERENCE_K, 4.0)
            source += glow * _chroma(kelvin)
        v = ti.Vector([velocity[i, j, k, 0], velocity[i, j, k, 1], velocity[i, j, k, 2]])
        vc = to_camera(prm, 13, v)
        out[i, j, k, 0] = rho
        out[i, j, k, 1] = source[0]
        out[i, j, k, 2] = source[1]
        out[i, j, k, 3] = source[2]
        out[i, j, k, 4] = dT
        out[i, j, k, 5] = rho * vc[0]
        out[i, j, k, 6] = rho * vc[1]
        out[i, j, k, 7] = rho * vc[2]


@ti.kernel
def _gas_march(chan: F32x4, occ: U8x3, depth: F32x2, split: F32x2, cam: F32x1, prm: F32x1, out: F32x3):
    """Per pixel: T and L in front of `split`, T and L behind it (to the depth), integrals (see GasMarcher.march).

    prm: origin (3), cell size, extinction, step length (m).
    """
    n, lo, h = grid_frame(chan, prm)
    inv_h = 1.0 / h
    ext = prm[4]
    ds_max = prm[5]
    hi = lo + h * ti.cast(n, ti.f32)
    for r, c in depth:
        o, d, t_in, t_out = pixel_span(cam, depth, r, c, lo, hi)
        dl = d.norm()
        t_split = split[r, c]
        du_num = (ti.cast(c, ti.f32) + 0.5 - cam[14])
        dv_num = (ti.cast(r, ti.f32) + 0.5 - cam[15])
        mass = 0.0
        t_max = 0.0
        mu = 0.0
        mv = 0.0
        for seg in ti.static(range(2)):
            a = t_in
            b = ti.min(t_out, t_split)
            if ti.static(seg == 1):
                a = ti.max(t_in, t_split)
                b = t_out
            trans = 1.0
            radiance = ti.Vector([0.0, 0.0, 0.0])
            if b > a:
                steps = ti.max(1, ti.cast(ti.ceil((b - a) * dl / ds_max), ti.i32))
                dt = (b - a) / steps
                ds = dt * dl
                for m in range(steps):
                    t = a + (m + 0.5) * dt
                    p = o + d * t
                    i0, f = lerp_setup((p - lo) * inv_h - 0.5, n)
                    if occ[i0[0], i0[1], i0[2]] != 0:
                        s = ti.Vector([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
                        for dx, dy, dz in ti.static(ti.ndrange(2, 2, 2)):
                            w = trilinear_weight(ti.Vector([dx, dy, dz]), f)
                            for ch in ti.static(range(CHANNELS)):
                                s[ch] += w * chan[i0[0] + dx, i0[1] + dy, i0[2] + dz, ch]
                        rho = s[0]
                        source = ti.Vector([s[1], s[2], s[3]])
                        step_tau = ext * rho * ds
                        weight = ds
                        step_trans = 1.0
                        if step_tau > 1e-4:
                            step_trans = ti.exp(-step_tau)
                            weight = (1.0 - step_trans) / (ext * rho)
                        elif step_tau > 0.0:
                            step_trans = 1.0 - step_tau
                        radiance += trans * source * weight
                        trans *= step_trans
                        mass += rho * ds
                        t_max = ti.max(t_max, s[4])
                        mu += (cam[12] * s[5] - du_num * s[7]) / t * ds
                        mv += (cam[13] * s[6] - dv_num * s[7]) / t * ds
            base = 4 * seg
            out[r, c, base] = trans
            out[r, c, base + 1] = radiance[0]
            out[r, c, base + 2] = radiance[1]
            out[r, c, base + 3] = radiance[2]
        out[r, c, 8] = mass
        out[r, c, 9] = t_max
        out[r, c, 10] = mu
        out[r, c, 11] = mv


# ---------------------------------------------------------------- gas: the Python side


POINT_LIGHT_CELLS = 32  # point and spot light shadows are marched on a grid of at most this many cells a side


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Boolean (nx, ny, nz): `mask` grown by one cell along every axis and diagonal (3 x 3 x 3 neighbourhood)."""
    out = np.ascontiguousarray(mask, dtype=bool)
    for axis in range(3):
        grown = out.copy()
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        grown[tuple(lo)] |= out[tuple(hi)]
        grown[tuple(hi)] |= out[tuple(lo)]
        out = grown
    return out


def _coarsen(a: np.ndarray, f: int, shape: tuple, reduce) -> np.ndarray:
    """`a` (nx, ny, nz) reduced over f x f x f blocks (edge blocks padded by repeating the edge) -> `shape`."""
    if f == 1:
        return np.ascontiguousarray(a, dtype=np.float32)
    pad = [(0, s * f - n) for s, n in zip(shape, a.shape)]
    b = np.pad(np.asarray(a, dtype=np.float32), pad, mode="edge")
    b = b.reshape(shape[0], f, shape[1], f, shape[2], f)
    return np.ascontiguousarray(reduce(b, axis=(1, 3, 5)), dtype=np.float32)


def _shifted(a: np.ndarray, du: float, dv: float) -> np.ndarray:
    """Bilinear samples of 2-D `a` at (u + du, v + dv) for every (u, v), |du|, |dv| <= 1, zero outside `a`."""
    iu, iv = int(np.floor(du)), int(np.floor(dv))
    fu, fv = du - iu, dv - iv
    nu, nv = a.shape
    p = np.pad(a, 2)
    s = lambda x, y: p[2 + x : 2 + x + nu, 2 + y : 2 + y + nv]  # noqa: E731
    return ((1 - fu) * (1 - fv)) * s(iu, iv) + (fu * (1 - fv)) * s(iu + 1, iv) + ((1 - fu) * fv) * s(iu, iv + 1) + (
        fu * fv
    ) * s(iu + 1, iv + 1)


def directional_optical_depth(sigma: np.ndarray, solid: np.ndarray, cell: float, to_light) -> np.ndarray:
    """Optical depth (nx, ny, nz) float32 from every cell centre to the grid's box toward a directional light.

    sigma (nx, ny, nz): extinction in 1/m; solid (nx, ny, nz): cells inside rigid bodies
    (opaque, ``SOLID_TAU``); cell: size in m; to_light (3,): unit direction toward the light.

    A sweep, slice by slice from the light's side along the axis the light direction
    is closest to: a cell's depth is that of the point one slice nearer the light
    along the light direction (bilinear in that slice, which the light reaches from
    zero outside the grid) plus the trapezoid sigma over the segment between them.
    Linear in the cell count; the bilinear steps blur shadow edges by about a cell.
    """
    L = np.asarray(to_light, dtype=np.float64)
    a = int(np.argmax(np.abs(L)))
    b, c = [x for x in range(3) if x != a]
    perm = (a, b, c)
    sig = np.transpose(np.asarray(sigma, dtype=np.float32), perm)
    sol = np.transpose(np.asarray(solid) != 0, perm)
    toward_plus = L[a] > 0  # the light lies toward +a: sweep from the last slice down
    if toward_plus:
        sig, sol = sig[::-1], sol[::-1]
    du, dv = L[b] / abs(L[a]), L[c] / abs(L[a])
    seg = np.float32(cell / abs(L[a]))
    tau = np.empty(sig.shape, np.float32)
    prev_tau = np.zeros(sig.shape[1:], np.float32)
    prev_sig = np.zeros(sig.shape[1:], np.float32)
    for k in range(sig.shape[0]):
        cur = _shifted(prev_tau, du, dv) + np.float32(0.5) * seg * (sig[k] + _shifted(prev_sig, du, dv))
        cur = np.where(sol[k], np.float32(SOLID_TAU), cur).astype(np.float32)
        tau[k] = cur
        prev_tau, prev_sig = cur, sig[k]
    if toward_plus:
        tau = tau[::-1]
    return np.ascontiguousarray(np.transpose(tau, np.argsort(perm)))


@dataclass
class GasLayers:
    """One frame of gas seen by the camera, all (H, W[, 3]) float32, rows top-down.

    front_T / front_L: transmittance and added radiance (linear) of the gas between the
    camera and the split depth (or the opaque surface, whichever is nearer);
    back_T / back_L: the same between the split depth and the opaque surface (1 and 0
    where there is no split in front of the opaque surface);
    density: integral of density along the ray to the opaque surface (concentration x m);
    temperature: highest temperature above ambient there (K);
    motion (H, W, 2): density-weighted mean over that ray of each point's screen motion
    (fx (Vx - x_n Vz) / z, fy (Vy - y_n Vz) / z) x frame_dt, pixels per frame, with
    (Vx, Vy, Vz) the gas velocity in camera axes and z the point's depth; 0 where
    density is 0.
    """

    front_T: np.ndarray
    front_L: np.ndarray
    back_T: np.ndarray
    back_L: np.ndarray
    density: np.ndarray
    temperature: np.ndarray
    motion: np.ndarray


class GasMarcher:
    """Ray marches gas frames for one camera model and light set.

    K: (3, 3) pinhole intrinsics; width, height in pixels; look: ``GasLook``;
    ambient (3,) linear and lights (L, LIGHT_ROW) from ``light_table``; frame_dt:
    simulated seconds per frame (screen motion is per frame).
    """

    def __init__(self, K, width: int, height: int, look: GasLook, ambient, lights, frame_dt: float):
        self.K = np.asarray(K, dtype=np.float64)
        self.width, self.height = int(width), int(height)
        self.look = look
        self.ambient = np.asarray(ambient, dtype=np.float64)
        self.lights = np.ascontiguousarray(lights, dtype=np.float32).reshape(-1, LIGHT_ROW)
        self.frame_dt = float(frame_dt)

    def cells(self, gas: GasFrame, cam_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The per-cell channels (nx, ny, nz, CHANNELS) float32 and the occupancy (nx-1, ny-1, nz-1) uint8."""
        shape = tuple(int(s) for s in gas.shape)
        if min(shape) < 2:
            raise ValueError(f"a gas grid needs at least 2 cells per axis to be sampled, got {shape}")
        c2w = np.asarray(cam_to_world, dtype=np.float64)
        albedo = display_to_linear(self.look.color)
        prm = np.zeros(22, np.float32)
        prm[0:3] = np.asarray(gas.origin, dtype=np.float64)
        prm[3] = gas.cell_size
        prm[4] = self.look.extinction
        prm[5:8] = albedo
        prm[8:11] = self.ambient
        prm[11] = self.look.flame_intensity * FLAME_GAIN
        prm[12] = gas.ambient_temperature
        prm[13:22] = c2w[:3, :3].reshape(-1)
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        out = np.empty(shape + (CHANNELS,), np.float32)
        lights = self.lights if len(self.lights) else np.zeros((1, LIGHT_ROW), np.float32)
        density = f32(gas.density)
        solid = np.ascontiguousarray(gas.solid, dtype=np.uint8)
        sigma = density * np.float32(self.look.extinction)
        directional = [row[4:7] for row in self.lights if int(row[0]) == LIGHT_DIRECTIONAL]
        points = [row[4:7] for row in self.lights if int(row[0]) != LIGHT_DIRECTIONAL]
        tau_dir = np.zeros((max(1, len(directional)),) + shape, np.float32)
        coarse = max(1, -(-max(shape) // POINT_LIGHT_CELLS))
        coarse_shape = tuple(max(2, -(-s // coarse)) for s in shape)
        tau_pt = np.zeros((max(1, len(points)),) + coarse_shape, np.float32)
        if density.any():
            for q, to_light in enumerate(directional):
                tau_dir[q] = directional_optical_depth(sigma, solid, gas.cell_size, to_light)
            if points:
                sigma_c, solid_c = _coarsen(sigma, coarse, coarse_shape, np.mean), _coarsen(solid, coarse, coarse_shape, np.max)
                for q, position in enumerate(points):
                    prm_c = np.array([*np.asarray(gas.origin, dtype=np.float64), gas.cell_size * coarse, *position], np.float32)
                    _point_tau(sigma_c, solid_c.astype(np.uint8), prm_c, tau_pt[q])
        _gas_cells(
            density, f32(gas.temperature), f32(gas.flame), f32(gas.velocity).reshape(shape + (3,)),
            _dilate(density > 0).view(np.uint8), lights, len(self.lights), tau_dir, tau_pt, coarse, prm, out,
        )
        # A trilinear sample with corner cell i touches cells i..i+1 on each axis: skip it where all are empty.
        nonzero = np.any(out != 0.0, axis=-1)
        occ = np.zeros((shape[0] - 1, shape[1] - 1, shape[2] - 1), dtype=bool)
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    occ |= nonzero[dx : shape[0] - 1 + dx, dy : shape[1] - 1 + dy, dz : shape[2] - 1 + dz]
        return out, occ.astype(np.uint8)

    def march(
        self, gas: GasFrame, cam_to_world: np.ndarray, depth: np.ndarray, split: Optional[np.ndarray] = None
    ) -> GasLayers:
        """March every pixel's ray through `gas` up to the opaque `depth` (H, W) z-depth in m, 0 = none.

        split (H, W) float32 z-depth in m (default: none) divides each ray into the gas in
        front of it and the gas behind it (``GasLayers``).
        """
        h, w = self.height, self.width
        chan, occ = self.cells(gas, cam_to_world)
        if split is None:
            split = np.full((h, w), BIG, np.float32)
        step = gas.cell_size / self.look.steps_per_cell
        prm = np.array([*np.asarray(gas.origin, dtype=np.float64), gas.cell_size, self.look.extinction, step], np.float32)
        out = np.empty((h, w, 12), np.float32)
        _gas_march(
            chan, occ, np.ascontiguousarray(depth, dtype=np.float32), np.ascontiguousarray(split, dtype=np.float32),
            camera_params(self.K, cam_to_world), prm, out,
        )
        mass = out[..., 8]
        motion = np.zeros((h, w, 2), np.float32)
        seen = mass > 0
        motion[seen] = out[..., 10:12][seen] / mass[seen][:, None] * np.float32(self.frame_dt)
        return GasLayers(
            front_T=out[..., 0].copy(), front_L=out[..., 1:4].copy(), back_T=out[..., 4].copy(),
            back_L=out[..., 5:8].copy(), density=mass.copy(), temperature=out[..., 9].copy(), motion=motion,
        )
