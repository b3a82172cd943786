"""Smoke and fire on a staggered (MAC) grid: advection, buoyancy, combustion, projection.

The grid covers ``spec.domain`` from its min corner with cubic cells of size ``dx``
(``fields_spec.grid_shape``). Cell (i, j, k) holds the scalars; velocity components
live on the faces: ``u[i, j, k]`` (shape (nx+1, ny, nz)) is the x velocity (m/s) on
the face at x = i dx between cells i-1 and i, likewise ``v`` (nx, ny+1, nz) and ``w``
(nx, ny, nz+1). Scalars: ``density`` (smoke concentration), ``temperature`` (kelvin
above ambient), ``fuel`` (unburnt fuel) and ``flame`` (fuel burnt per second).

One substep (``GasSolver.advance`` takes as many as the CFL number needs):

1. mark the cells whose centre is inside a rigid body as solid, give the faces
   touching them the body's velocity and the domain faces their boundary values;
2. advect velocity and scalars (MacCormack with a min/max clamp, or semi-Lagrangian;
   RK2 back-traces) through the velocity at the start of the substep;
3. emitters, combustion, cooling and dissipation (exponential decays);
4. Boussinesq buoyancy along -gravity, a = |g| (thermal T / T_ambient -
   smoke_weight density), and vorticity confinement eps dx (N x omega);
5. viscosity (explicit diffusion, sub-cycled to stay stable);
6. pressure projection: a conjugate-gradient Poisson solve (multigrid- or
   Jacobi-preconditioned) with p = 0 outside open faces and no flux through walls,
   inflow faces and bodies, then u -= dt grad p;
7. the pressure on every fluid-body face pushes that body (``Colliders.add_impulse``).

Boundaries. ``wall``/``free_slip``: normal velocity 0, tangential velocity mirrored
into the ghost cells (no shear); ``no_slip``: tangential velocity negated in the ghost
(0 on the wall); ``open``: pressure 0 outside, velocity and scalars extrapolated with
zero gradient when leaving, ambient (0) scalars entering; inflow: the normal velocity
is the inflow's, the ghost tangential velocity makes the wall value the inflow's, and
the ghost scalars are the inflow's density and temperature.

Determinism: every kernel writes each element from one loop iteration, except the
impulses on bodies (float atomics; fixed order with one CPU thread). Dot products sum
per (i, j) row, then per i, then serially over i, so their bits do not depend on the
thread count either.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hybrid.fields import backend
from hybrid.fields.backend import _import_taichi
from hybrid.fields.colliders import Colliders
from hybrid.fields.errors import FieldError
from hybrid.fields.memory import gas_bytes as estimate_bytes, level_shapes  # noqa: F401 (re-exported)
from hybrid.fields.frames import FieldStats, GasFrame
from hybrid.scene.fields_spec import FACE_NAMES, GasSpec, grid_shape

ti = _import_taichi()

# Face kinds (one per domain face, x_min, x_max, y_min, y_max, z_min, z_max).
WALL, NO_SLIP, OPEN, INFLOW = 0, 1, 2, 3
_KIND = {"wall": WALL, "free_slip": WALL, "no_slip": NO_SLIP, "open": OPEN}

# Multigrid preconditioner: red-black Gauss-Seidel sweeps per level and at the bottom.
PRE_SWEEPS = 2
BOTTOM_SWEEPS = 16
BIG = 3.0e38


def face_kinds(spec: GasSpec) -> list[int]:
    """The six domain faces' kinds (WALL, NO_SLIP, OPEN, INFLOW) in FACE_NAMES order."""
    out = []
    for name in FACE_NAMES:
        face = spec.boundaries.face(name)
        out.append(INFLOW if not isinstance(face, str) else _KIND[face])
    return out


def _padded(shape) -> tuple[int, int, int]:
    return tuple(int(s) + 2 for s in shape)  # type: ignore[return-value]


def _ghost_ranges(shape, axis: int):
    """ndrange bounds of the two ghost slabs across `axis` (0 low, 1 high), spanning the ghosts of the other axes."""
    return tuple((0, 2) if c == axis else (-1, int(shape[c]) + 1) for c in range(3))


def _interior(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[1:-1, 1:-1, 1:-1])


def _with_ghosts(a: np.ndarray) -> np.ndarray:
    out = np.zeros(tuple(s + 2 for s in a.shape), np.float32)
    out[1:-1, 1:-1, 1:-1] = a
    return out


def check_memory(spec: GasSpec, memory_limit_gb: float) -> None:
    """Raise FieldError when the gas grid would need more than `memory_limit_gb`."""
    need = estimate_bytes(spec)
    if need > memory_limit_gb * 1024**3:
        (nx, ny, nz), _ = grid_shape(spec.domain, spec.resolution)
        raise FieldError(
            f"the gas grid ({nx} x {ny} x {nz} cells at fields.gas.resolution {spec.resolution}) needs about "
            f"{need / 1024**3:.2f} GB, more than fields.memory_limit_gb ({memory_limit_gb}); lower "
            "fields.gas.resolution or raise fields.memory_limit_gb"
        )


@dataclass(frozen=True)
class GasReport:
    """What one ``advance`` did.

    substeps: gas substeps taken; pressure_iterations: most CG iterations of one
    projection; pressure_residual: largest final CG residual (max norm of the
    divergence it left, 1/s); max_divergence: max |div u| over fluid cells after the
    last projection (1/s), measured on the final velocity.
    """

    substeps: int = 0
    pressure_iterations: int = 0
    pressure_residual: float = 0.0
    max_divergence: float = 0.0

    def field_stats(self) -> FieldStats:
        return FieldStats(
            gas_substeps=self.substeps,
            pressure_iterations=self.pressure_iterations,
            pressure_residual=self.pressure_residual,
            max_divergence=self.max_divergence,
        )


@ti.func
def _corner(s, n: ti.template()):
    """Sample position s (index units of an array of shape n, ghosts at -1 and n) clamped
    into the array: the lower corner of its 2 x 2 x 2 stencil and the fraction within it."""
    base = ti.Vector([0, 0, 0])
    for b in ti.static(range(3)):
        s[b] = ti.min(ti.max(s[b], -1.0), n[b] + 0.0)
        base[b] = ti.min(ti.cast(ti.floor(s[b]), ti.i32), n[b] - 1)
    return base, s - base


@ti.func
def _trilinear_min_max(F: ti.template(), base, fr):
    """Trilinear value of scalar array F over the stencil at `base` with fraction `fr`,
    and the stencil's min and max (the MacCormack clamp)."""
    val = 0.0
    lo = BIG
    hi = -BIG
    for c in range(8):
        o = ti.Vector([c & 1, (c >> 1) & 1, (c >> 2) & 1])
        wv = o * fr + (1 - o) * (1.0 - fr)
        v = F[base + o]
        val += wv[0] * wv[1] * wv[2] * v
        lo = ti.min(lo, v)
        hi = ti.max(hi, v)
    return val, lo, hi


@ti.data_oriented
class GasSolver:
    """Smoke and fire on the MAC grid of `spec` (see the module docstring).

    `colliders`: the scene's rigid bodies (None: no bodies); `gravity` (m/s^2, world
    axes) sets the buoyancy direction and strength. Taichi must be running
    (``backend.ensure``); when it is not, it is started on the CPU, deterministic.
    """

    def __init__(self, spec: GasSpec, colliders: Optional[Colliders] = None, gravity=(0.0, 0.0, -9.81)):
        if backend.current() is None:
            backend.ensure("cpu", True)
        self.spec = spec
        self.shape, self.dx = grid_shape(spec.domain, spec.resolution)
        self.origin = np.asarray(spec.domain.min, dtype=np.float64)
        self.gravity = np.asarray(gravity, dtype=np.float64)
        self.kinds = face_kinds(spec)
        if INFLOW in self.kinds and OPEN not in self.kinds:
            raise FieldError(
                "fields.gas.boundaries has an inflow face but no open face: the air blown in has nowhere to go; "
                "make the opposite face (or another one) `open`"
            )
        self.singular = OPEN not in self.kinds  # closed box: pressure defined up to a constant
        if colliders is None:
            colliders = Colliders([], [])
        self.colliders = colliders
        self._closed = False
        self._last_dt = 1.0
        nx, ny, nz = self.shape
        f32 = ti.f32

        # Velocity on faces: value, MacCormack intermediate, result (also diffusion scratch).
        self.face_shapes = ((nx + 1, ny, nz), (nx, ny + 1, nz), (nx, ny, nz + 1))
        # vel and vel_hat have one ghost layer all round (index -1 and n), filled before they are sampled.
        pad = dict(offset=(-1, -1, -1))
        self.vel = [ti.field(f32, _padded(s), **pad) for s in self.face_shapes]
        self.vel_hat = [ti.field(f32, _padded(s), **pad) for s in self.face_shapes]
        self.vel_new = [ti.field(f32, s) for s in self.face_shapes]
        # Scalars: density, temperature, fuel (value and intermediate with ghosts, result) and flame.
        self.sc = [ti.field(f32, _padded(self.shape), **pad) for _ in range(3)]
        self.sc_hat = [ti.field(f32, _padded(self.shape), **pad) for _ in range(3)]
        self.sc_new = [ti.field(f32, self.shape) for _ in range(3)]
        self.flame = ti.field(f32, self.shape)
        self.body = ti.field(ti.i32, self.shape)  # -1 fluid, else the body covering the cell centre
        self.tvel = ti.Vector.field(3, f32, _padded(self.shape), **pad)  # cell-centred velocity for back-traces
        self.cvel = ti.Vector.field(3, f32, self.shape)  # cell-centred velocity, then confinement force
        self.omega = ti.Vector.field(3, f32, self.shape)  # vorticity, 1/s
        # Pressure solve. phi = dt p_kin / dx (m/s): u -= phi[i] - phi[i-1].
        self.phi = ti.field(f32, self.shape)
        self.d = ti.field(f32, self.shape)
        self.q = ti.field(f32, self.shape)
        self.levels = level_shapes(self.shape)
        self.mg_r = [ti.field(f32, s) for s in self.levels]  # level 0: the CG residual
        self.mg_z = [ti.field(f32, s) for s in self.levels]  # level 0: the preconditioned residual
        self.mg_fl = [ti.field(ti.i32, s) for s in self.levels]  # 1 where the (coarse) cell is fluid
        self.mg_t = [self.q] + [ti.field(f32, s) for s in self.levels[1:]]  # level residual r - A z (scratch)
        self.part2 = ti.field(f32, (nx, ny))
        self.part1 = ti.field(f32, nx)
        self.speed = ti.field(f32, 3)

        # Configuration read by kernels at run time (so one compiled kernel serves every scene).
        self.btype = ti.field(ti.i32, 6)
        self.inflow_vel = ti.Vector.field(3, f32, 6)
        self.inflow_sc = ti.Vector.field(3, f32, 6)  # density, temperature, fuel carried in
        self.geom = ti.field(f32, 8)  # dx, origin xyz, -g xyz
        n_em = max(1, len(spec.emitters))
        self.em_count = ti.field(ti.i32, ())
        self.em_shape = ti.field(ti.i32, n_em)  # 0 sphere, 1 box
        self.em_center = ti.Vector.field(3, f32, n_em)
        self.em_half = ti.Vector.field(3, f32, n_em)  # sphere: radius in [0]
        self.em_rates = ti.Vector.field(4, f32, n_em)  # density/s, temperature, heating 1/s, fuel/s
        self.em_vel = ti.Vector.field(3, f32, n_em)
        self.em_window = ti.Vector.field(3, f32, n_em)  # start, stop, sets velocity (0/1)

        self._upload_config()
        self._mark_cells()
        self._enforce()
        self.report = GasReport()
        backend.acquire()

    # ------------------------------------------------------------------ set-up

    def _upload_config(self) -> None:
        spec = self.spec
        self.btype.from_numpy(np.asarray(self.kinds, np.int32))
        inflow_vel = np.zeros((6, 3), np.float32)
        inflow_sc = np.zeros((6, 3), np.float32)
        for f, name in enumerate(FACE_NAMES):
            face = spec.boundaries.face(name)
            if not isinstance(face, str):
                inflow_vel[f] = face.velocity
                inflow_sc[f] = (face.density, face.temperature, 0.0)
        self.inflow_vel.from_numpy(inflow_vel)
        self.inflow_sc.from_numpy(inflow_sc)
        self.geom.from_numpy(np.asarray([self.dx, *self.origin, *(-self.gravity), 0.0], np.float32))
        n_em = max(1, len(spec.emitters))
        shape = np.zeros(n_em, np.int32)
        center = np.zeros((n_em, 3), np.float32)
        half = np.zeros((n_em, 3), np.float32)
        rates = np.zeros((n_em, 4), np.float32)
        vel = np.zeros((n_em, 3), np.float32)
        window = np.zeros((n_em, 3), np.float32)
        for e, em in enumerate(spec.emitters):
            shape[e] = 0 if em.shape == "sphere" else 1
            center[e] = em.center
            half[e] = (em.radius, em.radius, em.radius) if em.shape == "sphere" else np.asarray(em.size) / 2.0
            rates[e] = (em.density, em.temperature, em.heating, em.fuel)
            vel[e] = em.velocity
            window[e] = (em.start, 3.0e38 if em.stop is None else em.stop, float(any(c != 0 for c in em.velocity)))
        self.em_count[None] = len(spec.emitters)
        self.em_shape.from_numpy(shape)
        self.em_center.from_numpy(center)
        self.em_half.from_numpy(half)
        self.em_rates.from_numpy(rates)
        self.em_vel.from_numpy(vel)
        self.em_window.from_numpy(window)

    # ------------------------------------------------------------------ host API

    def set_scalars(self, density=None, temperature=None, fuel=None) -> None:
        """Overwrite scalar grids with (nx, ny, nz) arrays: smoke concentration, kelvin above ambient, fuel."""
        for field, value in zip(self.sc, (density, temperature, fuel)):
            if value is not None:
                field.from_numpy(_with_ghosts(np.broadcast_to(np.asarray(value, np.float32), self.shape)))

    def set_face_velocity(self, u, v, w) -> None:
        """Overwrite the face velocities (m/s): u (nx+1, ny, nz), v (nx, ny+1, nz), w (nx, ny, nz+1).

        Boundary and body faces are reset to their prescribed values at the next step.
        """
        for field, value, shape in zip(self.vel, (u, v, w), self.face_shapes):
            field.from_numpy(_with_ghosts(np.broadcast_to(np.asarray(value, np.float32), shape)))

    def face_velocity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the face velocities u, v, w (m/s), shapes as in ``set_face_velocity``."""
        return tuple(_interior(f.to_numpy()) for f in self.vel)  # type: ignore[return-value]

    def pressure(self) -> np.ndarray:
        """Kinematic pressure p / air_density (m^2/s^2) of the last projection, (nx, ny, nz); 0 in solids."""
        return self.phi.to_numpy() * np.float32(self.dx / max(self._last_dt, 1e-30))

    def max_speed(self) -> float:
        """Fastest speed the next step must resolve (m/s): the gas, inflows, emitters, moving bodies in the domain."""
        self._face_speed()
        s = self.speed.to_numpy().astype(np.float64)
        speed = float(np.sqrt((s**2).sum()))
        speed = max(speed, self.spec.prescribed_speed)
        c = self.colliders
        if c.count:
            lin = c.lin_vel.to_numpy()[: c.count].astype(np.float64)
            ang = c.ang_vel.to_numpy()[: c.count].astype(np.float64)
            org = c.origin.to_numpy()[: c.count].astype(np.float64)
            lo = self.origin
            hi = self.origin + self.dx * np.asarray(self.shape)
            for b, shape in enumerate(c.shapes):
                reach = shape.bound_radius
                if np.isfinite(reach):
                    gap = np.linalg.norm(np.maximum(0.0, np.maximum(lo - org[b], org[b] - hi)))
                    if gap > reach + self.dx:
                        continue  # nowhere near the grid
                    speed = max(speed, float(np.linalg.norm(lin[b]) + np.linalg.norm(ang[b]) * reach))
                else:
                    speed = max(speed, float(np.linalg.norm(lin[b])))
        return speed

    def substeps_for(self, dt: float) -> int:
        """Substeps the CFL number asks for to advance `dt` seconds now: ceil(dt speed / (cfl dx)), at least 1."""
        speed = self.max_speed()
        if not math.isfinite(speed):
            raise FieldError(
                "the gas velocity is not finite (the simulation blew up); lower fields.gas.cfl, raise "
                "fields.gas.max_substeps or calm the emitters and inflows"
            )
        return max(1, math.ceil(dt * speed / (self.spec.cfl * self.dx) - 1e-9))

    def advance(self, dt: float, t: float, frame_dt: Optional[float] = None) -> GasReport:
        """Advance the gas from simulated time `t` by `dt` seconds in CFL-limited substeps.

        The bodies move with ``colliders.advance`` between substeps (set their state
        before calling). At most ``spec.max_substeps`` substeps per video frame of
        `frame_dt` seconds (default: `dt` is one frame); more is a FieldError.
        """
        if self._closed:
            raise FieldError("this gas solver was closed; build a new one")
        n = self.substeps_for(dt)
        allowed = self.spec.max_substeps
        if frame_dt is not None and frame_dt > 0:
            allowed = max(1, math.ceil(self.spec.max_substeps * dt / frame_dt - 1e-9))
        if n > allowed:
            raise FieldError(
                f"the gas needs {n} substeps for this {'frame' if frame_dt is None else 'step'} (speed "
                f"{self.max_speed():.3g} m/s, cell {self.dx:.3g} m, fields.gas.cfl {self.spec.cfl}) but "
                f"fields.gas.max_substeps allows {allowed}; raise fields.gas.max_substeps (slower), raise "
                "fields.gas.cfl (less accurate), lower fields.gas.resolution, or slow the inflows, emitters "
                "and bodies"
            )
        sub = dt / n
        iters, resid = 0, 0.0
        for s in range(n):
            if s > 0:
                self.colliders.advance(sub)
            it, res = self._substep(sub, t + s * sub)
            iters, resid = max(iters, it), max(resid, res)
        div = self._max_divergence() / self.dx
        self.report = GasReport(n, iters, resid, div)
        return self.report

    def project(self, dt: float = 1.0) -> GasReport:
        """Mark the bodies, set boundary velocities and make the velocity divergence-free (no time step).

        `dt` only scales the pressure (and the impulses on bodies, which this does not apply).
        """
        self._mark_cells()
        self._enforce()
        it, res = self._project(dt)
        self.report = GasReport(0, it, res, self._max_divergence() / self.dx)
        return self.report

    def frame(self) -> GasFrame:
        """NumPy copies of the grids, velocity at cell centres (see ``GasFrame``)."""
        self._cell_velocity()
        return GasFrame(
            origin=self.origin.copy(),
            cell_size=float(self.dx),
            ambient_temperature=float(self.spec.ambient_temperature),
            density=_interior(self.sc[0].to_numpy()),
            temperature=_interior(self.sc[1].to_numpy()),
            fuel=_interior(self.sc[2].to_numpy()),
            flame=self.flame.to_numpy(),
            velocity=self.cvel.to_numpy(),
            solid=(self.body.to_numpy() >= 0).astype(np.uint8),
        )

    def close(self) -> None:
        """Release this solver's hold on the Taichi runtime (its fields stay until Taichi restarts)."""
        if not self._closed:
            self._closed = True
            backend.release()

    # ------------------------------------------------------------------ one substep

    def _substep(self, dt: float, t: float) -> tuple[int, float]:
        spec = self.spec
        s = dt / self.dx
        self._mark_cells()
        self._enforce()
        self._extrapolate_scalars()
        self._fill_ghosts(0)
        self._advect_forward(s)
        if spec.advection == "maccormack":
            self._fill_ghosts(1)
            self._advect_correct(s)
            self._copy_back(1)
        else:
            self._copy_back(0)
        comb = spec.combustion
        self._sources(
            dt,
            t,
            math.exp(-spec.cooling * dt),
            math.exp(-spec.dissipation * dt),
            1 if comb is not None else 0,
            comb.ignition_temperature if comb else 0.0,
            (1.0 - math.exp(-comb.burn_rate * dt)) if comb else 0.0,
            comb.heat if comb else 0.0,
            comb.smoke if comb else 0.0,
        )
        eps = spec.vorticity
        if eps > 0:
            self._confinement(eps * self.dx)
        b = spec.buoyancy
        self._forces(dt, 1 if eps > 0 else 0, b.thermal / spec.ambient_temperature, b.smoke_weight)
        if spec.viscosity > 0:
            lam = spec.viscosity * dt / self.dx**2
            cycles = max(1, math.ceil(lam * 8.0))  # explicit 3-D diffusion is stable for nu h / dx^2 <= 1/6
            for _ in range(cycles):
                self._fill_ghosts(2)
                self._diffuse(lam / cycles)
                self._copy_diffused()
        self._enforce()
        it, res = self._project(dt)
        self._impulses(spec.air_density * self.dx**3)
        self._clear_solid_scalars()
        return it, res

    # ------------------------------------------------------------------ pressure solve (host side)

    def _project(self, dt: float) -> tuple[int, float]:
        """Solve A phi = -dx div u (A: 7-point Laplacian x dx^2, SPD) and subtract grad phi; (iterations, residual 1/s)."""
        self._last_dt = dt
        p = self.spec.pressure
        L = len(self.levels)
        if p.method == "mgpcg" and L > 1:
            self._coarsen_all()
        r0 = self._rhs()
        if self.singular:
            self._remove_mean(self.mg_r[0])
            r0 = self._max_abs(self.mg_r[0])
        iters = 0
        rmax = r0
        if r0 > 0:
            target = p.tolerance * r0
            self._precondition()
            rz = self._dot(self.mg_r[0], self.mg_z[0])
            self._copy_field(self.mg_z[0], self.d)
            while iters < p.max_iterations:
                dq = self._apply_a_dot()
                iters += 1
                if not dq > 0:
                    break
                alpha = rz / dq
                rmax = self._update_xr(alpha)
                if rmax <= target:
                    break
                self._precondition()
                rz_new = self._dot(self.mg_r[0], self.mg_z[0])
                beta = rz_new / rz if rz != 0 else 0.0
                rz = rz_new
                self._update_d(beta)
        self._subtract_gradient()
        return iters, rmax / self.dx

    def _precondition(self) -> None:
        if self.spec.pressure.method == "cg":
            self._jacobi()
        else:
            self._vcycle()
        if self.singular:
            self._remove_mean(self.mg_z[0])

    def _vcycle(self) -> None:
        """z = V(r), mg_z[0] from mg_r[0]: symmetric red-black Gauss-Seidel, piecewise-constant transfers.

        Linear and symmetric positive definite (post-smoothing mirrors pre-smoothing, the
        prolongation is twice the restriction's transpose), so it is a valid CG preconditioner.
        """
        L = len(self.levels)
        self.mg_z[0].fill(0.0)
        for lvl in range(L - 1):
            for _ in range(PRE_SWEEPS):
                self._smooth(lvl, 0)
                self._smooth(lvl, 1)
            self._residual(lvl)
            self._restrict(lvl)  # also zeroes the coarse z
        for _ in range(BOTTOM_SWEEPS):
            self._smooth(L - 1, 0)
            self._smooth(L - 1, 1)
        for _ in range(BOTTOM_SWEEPS):
            self._smooth(L - 1, 1)
            self._smooth(L - 1, 0)
        for lvl in reversed(range(L - 1)):
            self._prolong(lvl)
            for _ in range(PRE_SWEEPS):
                self._smooth(lvl, 1)
                self._smooth(lvl, 0)

    def _remove_mean(self, x) -> None:
        total = self._masked_sum(x)
        count = self._fluid_count()
        if count > 0:
            self._shift(x, -total / count)

    # ------------------------------------------------------------------ kernel helpers (ti.func)

    @ti.func
    def _unit(self, a: ti.template()):
        return ti.Vector.unit(3, a, ti.i32)

    def _fill_ghosts(self, which: int) -> None:
        """Ghost layers: 0 velocity and scalars, 1 their MacCormack intermediates, 2 velocity only."""
        self._ghosts(which)

    @ti.kernel
    def _ghosts(self, which: ti.template()):
        vel = ti.static(self.vel_hat if which == 1 else self.vel)
        for a in ti.static(range(3)):
            self._ghost_faces(vel[a], a)
        if ti.static(which == 0):
            self._trace_velocity()
        if ti.static(which != 2):
            sc = ti.static(self.sc_hat if which == 1 else self.sc)
            for q in ti.static(range(3)):
                self._ghost_cells(sc[q], q)

    @ti.func
    def _ghost_faces(self, F: ti.template(), a: ti.template()):
        """Fill the ghost layer of velocity component a: zero gradient along a; across the other axes mirrored
        (free slip, open), negated (no slip) or reflected about the inflow's tangential velocity. Axis by axis,
        so edge and corner ghosts combine the rules."""
        m = ti.static(self.face_shapes[a])
        for b in ti.static(range(3)):
            rng = ti.static(_ghost_ranges(self.face_shapes[a], b))
            for I in ti.grouped(ti.ndrange(rng[0], rng[1], rng[2])):
                side = I[b]
                G = I
                G[b] = side * (m[b] + 1) - 1
                J = I
                J[b] = side * (m[b] - 1)
                val = F[J]
                if ti.static(b != a):
                    f = 2 * b + side
                    t = self.btype[f]
                    if t == NO_SLIP:
                        val = -val
                    elif t == INFLOW:
                        val = 2.0 * self.inflow_vel[f][a] - val
                F[G] = val

    @ti.func
    def _trace_velocity(self):
        """tvel = face velocities averaged to the cell centres, ghost cells included (face ghosts filled)."""
        n = ti.static(self.shape)
        for I in ti.grouped(ti.ndrange((-1, n[0] + 1), (-1, n[1] + 1), (-1, n[2] + 1))):
            c = ti.Vector([0.0, 0.0, 0.0])
            for a in ti.static(range(3)):
                c[a] = 0.5 * (self.vel[a][I] + self.vel[a][I + self._unit(a)])
            self.tvel[I] = c

    @ti.func
    def _ghost_cells(self, S: ti.template(), q: ti.template()):
        """Fill the ghost layer of scalar q: 0 beyond open faces, the inflow's value beyond inflow faces, else zero gradient."""
        m = ti.static(self.shape)
        for b in ti.static(range(3)):
            rng = ti.static(_ghost_ranges(self.shape, b))
            for I in ti.grouped(ti.ndrange(rng[0], rng[1], rng[2])):
                side = I[b]
                G = I
                G[b] = side * (m[b] + 1) - 1
                J = I
                J[b] = side * (m[b] - 1)
                val = S[J]
                f = 2 * b + side
                t = self.btype[f]
                if t == OPEN:
                    val = 0.0
                elif t == INFLOW:
                    val = self.inflow_sc[f][q]
                S[G] = val

    @ti.func
    def _interp_face(self, F: ti.template(), a: ti.template(), g):
        """Trilinear value of component `a` (array F) at grid position g (cell units), and its corners' min, max."""
        s = g - 0.5
        s[a] += 0.5
        base, fr = _corner(s, ti.static(self.face_shapes[a]))
        return _trilinear_min_max(F, base, fr)

    @ti.func
    def _velocity_at(self, g):
        """Velocity (m/s) at grid position g: trilinear in the cell-centred copy `tvel` (ghosts included)."""
        base, fr = _corner(g - 0.5, ti.static(self.shape))
        val = ti.Vector([0.0, 0.0, 0.0])
        for c in range(8):
            o = ti.Vector([c & 1, (c >> 1) & 1, (c >> 2) & 1])
            wv = o * fr + (1 - o) * (1.0 - fr)
            val += wv[0] * wv[1] * wv[2] * self.tvel[base + o]
        return val

    @ti.func
    def _trace(self, g, s):
        """Where the parcel at grid position g was `s` x dx-seconds ago (RK2 midpoint); negative s traces forward."""
        p = g
        v = ti.Vector([0.0, 0.0, 0.0])
        for _ in range(2):
            v = self._velocity_at(p)
            p = g - 0.5 * s * v
        return g - s * v

    @ti.func
    def _interp_cell(self, S: ti.template(), q: ti.template(), g):
        """Trilinear value of the cell-centred array S at grid position g, and its corners' min, max."""
        base, fr = _corner(g - 0.5, ti.static(self.shape))
        return _trilinear_min_max(S, base, fr)

    @ti.func
    def _kind(self, I):
        """0: fluid cell; 1: no-flux neighbour (body, wall, inflow ghost); 2: open ghost (p = 0)."""
        n = ti.static(self.shape)
        k = 0
        f = -1
        for b in ti.static(range(3)):
            if I[b] < 0:
                f = 2 * b
            elif I[b] >= n[b]:
                f = 2 * b + 1
        if f >= 0:
            k = ti.select(self.btype[f] == OPEN, 2, 1)
        elif self.body[I] >= 0:
            k = 1
        return k

    @ti.func
    def _free_face(self, a: ti.template(), I):
        """Whether face I of axis a is solved for by the projection (neither side a body, wall or inflow)."""
        return self._kind(I - self._unit(a)) != 1 and self._kind(I) != 1

    @ti.func
    def _stencil(self, x: ti.template(), fl: ti.template(), I):
        """(diagonal, sum of fluid neighbours' x) of the 7-point operator at fluid cell I of a level."""
        n = ti.static(x.shape)
        diag = 0.0
        acc = 0.0
        for a in ti.static(range(3)):
            for side in ti.static(range(2)):
                J = I + self._unit(a) * (2 * side - 1)
                if 0 <= J[a] < n[a]:
                    if fl[J] != 0:
                        diag += 1.0
                        acc += x[J]
                elif self.btype[2 * a + side] == OPEN:
                    diag += 1.0
        return diag, acc

    @ti.func
    def _face_pos(self, a: ti.template(), I):
        dx = self.geom[0]
        org = ti.Vector([self.geom[1], self.geom[2], self.geom[3]])
        g = I + 0.5
        g[a] -= 0.5
        return org + dx * g

    # ------------------------------------------------------------------ kernels: bodies and boundaries

    def _mark_cells(self) -> None:
        """Body cells (``mark_solids``), then sealed pockets out of the pressure solve.

        A pocket is air the grid shuts in between bodies and walls with no way out: a
        box landing next to a wall, a gap narrower than a cell. Its velocity need not
        be divergence-free (a body moving into it changes its volume), so the pressure
        equation there has no solution and conjugate gradients drive the pressure, and
        the impulse on the body, without bound. Real air leaks out of such gaps (or
        compresses a little), so pockets are left out: no pressure, no push. With an
        open face, a pocket is a connected region of air cells that touches none; in a
        closed box, every region but the largest.
        """
        self.mark_solids()
        if self.colliders.count == 0:
            return  # without bodies the air is one region (the walls are the domain's faces)
        from scipy import ndimage

        air = self.body.to_numpy() < 0
        labels, count = ndimage.label(air)  # 6-connected
        if count <= 1 and (self.singular or self._touches_open(labels).any()):
            return
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        keep = np.zeros(count + 1, dtype=bool)
        if self.singular:
            keep[1 + int(np.argmax(sizes[1:]))] = True
        else:
            keep |= self._touches_open(labels, count + 1)
        keep[0] = False
        self.mg_fl[0].from_numpy(keep[labels].astype(np.int32))

    def _touches_open(self, labels: np.ndarray, n: Optional[int] = None) -> np.ndarray:
        """Per region label (0..n-1): whether the region has a cell on an open face of the domain."""
        n = int(labels.max()) + 1 if n is None else n
        out = np.zeros(n, dtype=bool)
        for face, kind in enumerate(self.kinds):
            if kind == OPEN:
                axis, side = divmod(face, 2)
                out[np.unique(np.take(labels, -1 if side else 0, axis=axis))] = True
        out[0] = False
        return out

    @ti.kernel
    def mark_solids(self):
        """body[cell] = the body whose SDF is negative at the cell centre, else -1; fluid flags for the solve."""
        dx = self.geom[0]
        org = ti.Vector([self.geom[1], self.geom[2], self.geom[3]])
        for I in ti.grouped(self.body):
            b = -1
            if self.colliders.count > 0:
                p = org + dx * (I + 0.5)
                bb, d = self.colliders.nearest(p, 0.0)
                if bb >= 0 and d < 0.0:
                    b = bb
            self.body[I] = b
            self.mg_fl[0][I] = ti.select(b < 0, 1, 0)

    @ti.kernel
    def _enforce(self):
        """Body velocity on faces touching a body; wall (0) and inflow normal velocity on the domain faces."""
        for a in ti.static(range(3)):
            F = ti.static(self.vel[a])
            n = ti.static(self.shape)
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                lo_in = I[a] > 0
                hi_in = I[a] < n[a]
                bl = -1
                bh = -1
                if lo_in:
                    bl = self.body[I - self._unit(a)]
                if hi_in:
                    bh = self.body[I]
                if bl >= 0 or bh >= 0:
                    b = ti.select(bl >= 0, bl, bh)
                    F[I] = self.colliders.velocity(b, self._face_pos(a, I))[a]
                else:
                    f = -1
                    if not lo_in:
                        f = 2 * a
                    elif not hi_in:
                        f = 2 * a + 1
                    if f >= 0:
                        t = self.btype[f]
                        if t == WALL or t == NO_SLIP:
                            F[I] = 0.0
                        elif t == INFLOW:
                            F[I] = self.inflow_vel[f][a]

    @ti.kernel
    def _impulses(self, scale: ti.f32):
        """Pressure on fluid-body faces pushes the body: J = air_density p_kin dx^2 dt = scale phi along the face normal into it."""
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                if 0 < I[a] < n[a]:
                    lo = I - self._unit(a)
                    bl = self.body[lo]
                    bh = self.body[I]
                    if bl < 0 and bh >= 0:  # fluid below, body above: pushes +a
                        self.colliders.add_impulse(bh, self._face_pos(a, I), scale * self.phi[lo] * self._unit(a))
                    elif bl >= 0 and bh < 0:
                        self.colliders.add_impulse(bl, self._face_pos(a, I), -scale * self.phi[I] * self._unit(a))

    @ti.kernel
    def _extrapolate_scalars(self):
        """Solid cells next to fluid take the mean of their fluid neighbours (so interpolation near bodies does not see 0)."""
        n = ti.static(self.shape)
        for I in ti.grouped(self.body):
            if self.body[I] >= 0:
                cnt = 0
                acc = ti.Vector([0.0, 0.0, 0.0])
                for a in ti.static(range(3)):
                    for side in ti.static(range(2)):
                        J = I + self._unit(a) * (2 * side - 1)
                        if 0 <= J[a] < n[a]:
                            if self.body[J] < 0:
                                cnt += 1
                                acc += ti.Vector([self.sc[0][J], self.sc[1][J], self.sc[2][J]])
                if cnt > 0:
                    for q in ti.static(range(3)):
                        self.sc[q][I] = acc[q] / cnt

    @ti.kernel
    def _clear_solid_scalars(self):
        for I in ti.grouped(self.body):
            if self.body[I] >= 0:
                for q in ti.static(range(3)):
                    self.sc[q][I] = 0.0
                self.flame[I] = 0.0

    # ------------------------------------------------------------------ kernels: advection

    @ti.kernel
    def _advect_forward(self, s: ti.f32):
        """Semi-Lagrangian step (RK2 back-trace) of velocity and scalars into the *_hat arrays; s = dt / dx."""
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                g = I + 0.5
                g[a] -= 0.5
                val, _, _ = self._interp_face(self.vel[a], a, self._trace(g, s))
                self.vel_hat[a][I] = val
        for I in ti.grouped(self.body):
            if self.body[I] < 0:
                gb = self._trace(I + 0.5, s)
                for q in ti.static(range(3)):
                    val, _, _ = self._interp_cell(self.sc[q], q, gb)
                    self.sc_hat[q][I] = val
            else:
                for q in ti.static(range(3)):
                    self.sc_hat[q][I] = self.sc[q][I]

    @ti.kernel
    def _advect_correct(self, s: ti.f32):
        """MacCormack: new = hat + (old - back-and-forth) / 2, clamped to the corners of the back-traced sample."""
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                g = I + 0.5
                g[a] -= 0.5
                _, lo, hi = self._interp_face(self.vel[a], a, self._trace(g, s))
                back, _, _ = self._interp_face(self.vel_hat[a], a, self._trace(g, -s))
                hat = self.vel_hat[a][I]
                self.vel_new[a][I] = ti.min(ti.max(hat + 0.5 * (self.vel[a][I] - back), lo), hi)
        for I in ti.grouped(self.body):
            if self.body[I] < 0:
                g = I + 0.5
                gb = self._trace(g, s)
                gf = self._trace(g, -s)
                for q in ti.static(range(3)):
                    _, lo, hi = self._interp_cell(self.sc[q], q, gb)
                    back, _, _ = self._interp_cell(self.sc_hat[q], q, gf)
                    hat = self.sc_hat[q][I]
                    self.sc_new[q][I] = ti.min(ti.max(hat + 0.5 * (self.sc[q][I] - back), lo), hi)
            else:
                for q in ti.static(range(3)):
                    self.sc_new[q][I] = self.sc[q][I]

    @ti.kernel
    def _copy_back(self, corrected: ti.i32):
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                self.vel[a][I] = ti.select(corrected != 0, self.vel_new[a][I], self.vel_hat[a][I])
        for I in ti.grouped(self.body):
            for q in ti.static(range(3)):
                self.sc[q][I] = ti.select(corrected != 0, self.sc_new[q][I], self.sc_hat[q][I])

    # ------------------------------------------------------------------ kernels: sources and forces

    @ti.func
    def _inside_emitter(self, e, p):
        c = self.em_center[e]
        h = self.em_half[e]
        inside = False
        if self.em_shape[e] == 0:
            inside = (p - c).norm_sqr() < h[0] * h[0]
        else:
            d = ti.abs(p - c)
            inside = d[0] < h[0] and d[1] < h[1] and d[2] < h[2]
        return inside

    @ti.kernel
    def _sources(self, dt: ti.f32, t: ti.f32, cool: ti.f32, keep: ti.f32, burn: ti.i32, ignition: ti.f32,
                 frac: ti.f32, heat: ti.f32, smoke: ti.f32):
        """Emitters (active for start <= t < stop), combustion, cooling (T *= cool) and dissipation (density *= keep)."""
        dx = self.geom[0]
        org = ti.Vector([self.geom[1], self.geom[2], self.geom[3]])
        for I in ti.grouped(self.body):
            flame = 0.0
            if self.body[I] < 0:
                p = org + dx * (I + 0.5)
                dens = self.sc[0][I]
                temp = self.sc[1][I]
                fuel = self.sc[2][I]
                for e in range(self.em_count[None]):
                    win = self.em_window[e]
                    if win[0] <= t < win[1] and self._inside_emitter(e, p):
                        r = self.em_rates[e]
                        dens += r[0] * dt
                        temp += (r[1] - temp) * (1.0 - ti.exp(-r[2] * dt))
                        fuel += r[3] * dt
                if burn != 0 and temp > ignition and fuel > 0.0:
                    burnt = fuel * frac
                    fuel -= burnt
                    temp += heat * burnt
                    dens += smoke * burnt
                    flame = burnt / dt
                self.sc[0][I] = dens * keep
                self.sc[1][I] = temp * cool
                self.sc[2][I] = fuel
            self.flame[I] = flame
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                p = self._face_pos(a, I)
                for e in range(self.em_count[None]):
                    win = self.em_window[e]
                    if win[2] > 0.0 and win[0] <= t < win[1] and self._inside_emitter(e, p):
                        self.vel[a][I] = self.em_vel[e][a]

    @ti.kernel
    def _confinement(self, eps_dx: ti.f32):
        """Vorticity confinement force eps dx (N x omega) per fluid cell into cvel (m/s^2)."""
        n = ti.static(self.shape)
        dx = self.geom[0]
        for I in ti.grouped(self.cvel):
            c = ti.Vector([0.0, 0.0, 0.0])
            for a in ti.static(range(3)):
                c[a] = 0.5 * (self.vel[a][I] + self.vel[a][I + self._unit(a)])
            self.cvel[I] = c
        for I in ti.grouped(self.omega):
            grad = ti.Matrix.zero(ti.f32, 3, 3)  # grad[a, b] = d v_a / d x_b
            for b in ti.static(range(3)):
                ip = I + self._unit(b)
                im = I - self._unit(b)
                ip[b] = ti.min(ip[b], n[b] - 1)
                im[b] = ti.max(im[b], 0)
                h = (ip[b] - im[b]) * dx
                dv = self.cvel[ip] - self.cvel[im]
                for a in ti.static(range(3)):
                    grad[a, b] = dv[a] / h
            self.omega[I] = ti.Vector([grad[2, 1] - grad[1, 2], grad[0, 2] - grad[2, 0], grad[1, 0] - grad[0, 1]])
        for I in ti.grouped(self.cvel):
            f = ti.Vector([0.0, 0.0, 0.0])
            if self.body[I] < 0:
                eta = ti.Vector([0.0, 0.0, 0.0])
                for b in ti.static(range(3)):
                    ip = I + self._unit(b)
                    im = I - self._unit(b)
                    ip[b] = ti.min(ip[b], n[b] - 1)
                    im[b] = ti.max(im[b], 0)
                    h = (ip[b] - im[b]) * dx
                    if h > 0:
                        eta[b] = (self.omega[ip].norm() - self.omega[im].norm()) / h
                length = eta.norm()
                if length > 1e-12:
                    f = eps_dx * (eta / length).cross(self.omega[I])
            self.cvel[I] = f

    @ti.kernel
    def _forces(self, dt: ti.f32, confine: ti.i32, thermal: ti.f32, weight: ti.f32):
        """Buoyancy -g (thermal T - weight density) and the confinement force (cvel), onto the faces."""
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                ga = self.geom[4 + a]  # -g along axis a
                lo = I - self._unit(a)
                T = 0.0
                rho = 0.0
                f = 0.0
                cnt = 0
                if I[a] > 0:
                    T += self.sc[1][lo]
                    rho += self.sc[0][lo]
                    f += self.cvel[lo][a]
                    cnt += 1
                if I[a] < n[a]:
                    T += self.sc[1][I]
                    rho += self.sc[0][I]
                    f += self.cvel[I][a]
                    cnt += 1
                acc = ga * (thermal * T - weight * rho) / cnt
                if confine != 0:
                    acc += f / cnt
                self.vel[a][I] += dt * acc

    @ti.kernel
    def _diffuse(self, lam: ti.f32):
        """One explicit diffusion step vel_new = vel + lam * (7-point Laplacian x dx^2) on the free faces."""
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                val = self.vel[a][I]
                if self._free_face(a, I):
                    acc = 0.0
                    for b in ti.static(range(3)):
                        acc += self.vel[a][I + self._unit(b)] + self.vel[a][I - self._unit(b)]
                    val += lam * (acc - 6.0 * val)
                self.vel_new[a][I] = val

    @ti.kernel
    def _copy_diffused(self):
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                self.vel[a][I] = self.vel_new[a][I]

    # ------------------------------------------------------------------ kernels: pressure projection

    @ti.kernel
    def _rhs(self) -> ti.f32:
        """r = b = -dx div u on fluid cells (0 elsewhere and where no neighbour can take flux), phi = 0; returns max |b|."""
        m = 0.0
        for I in ti.grouped(self.phi):
            b = 0.0
            if self.body[I] < 0:
                diag, _ = self._stencil(self.phi, self.mg_fl[0], I)
                if diag > 0:
                    for a in ti.static(range(3)):
                        b -= self.vel[a][I + self._unit(a)] - self.vel[a][I]
            self.mg_r[0][I] = b
            self.phi[I] = 0.0
            ti.atomic_max(m, ti.abs(b))
        return m

    @ti.kernel
    def _max_abs(self, x: ti.template()) -> ti.f32:
        m = 0.0
        for I in ti.grouped(x):
            ti.atomic_max(m, ti.abs(x[I]))
        return m

    @ti.func
    def _sum_rows(self):
        """The total of the row sums in `part2`: per i in parallel, then serially over i
        (a fixed order, so the bits do not depend on the thread count). Call it at a
        kernel's top level, after the loop that fills `part2`."""
        n = ti.static(self.shape)
        for i in self.part1:
            s = 0.0
            for j in range(n[1]):
                s += self.part2[i, j]
            self.part1[i] = s
        total = 0.0
        ti.loop_config(serialize=True)
        for i in range(n[0]):
            total += self.part1[i]
        return total

    @ti.kernel
    def _dot(self, x: ti.template(), y: ti.template()) -> ti.f32:
        """Sum of x y: per (i, j) row, then per i, then serially (bits independent of threads)."""
        n = ti.static(self.shape)
        for i, j in self.part2:
            s = 0.0
            for k in range(n[2]):
                s += x[i, j, k] * y[i, j, k]
            self.part2[i, j] = s
        return self._sum_rows()

    @ti.kernel
    def _masked_sum(self, x: ti.template()) -> ti.f32:
        n = ti.static(self.shape)
        for i, j in self.part2:
            s = 0.0
            for k in range(n[2]):
                if self.mg_fl[0][i, j, k] != 0:
                    s += x[i, j, k]
            self.part2[i, j] = s
        return self._sum_rows()

    @ti.kernel
    def _fluid_count(self) -> ti.i32:
        c = 0
        for I in ti.grouped(self.body):
            if self.mg_fl[0][I] != 0:
                c += 1
        return c

    @ti.kernel
    def _shift(self, x: ti.template(), by: ti.f32):
        for I in ti.grouped(x):
            if self.mg_fl[0][I] != 0:
                x[I] += by

    @ti.kernel
    def _copy_field(self, src: ti.template(), dst: ti.template()):
        for I in ti.grouped(src):
            dst[I] = src[I]

    @ti.kernel
    def _apply_a_dot(self) -> ti.f32:
        """q = A d on fluid cells; returns d . q (row sums as in _dot)."""
        n = ti.static(self.shape)
        for i, j in self.part2:
            s = 0.0
            for k in range(n[2]):
                I = ti.Vector([i, j, k])
                qv = 0.0
                if self.mg_fl[0][I] != 0:
                    diag, acc = self._stencil(self.d, self.mg_fl[0], I)
                    qv = diag * self.d[I] - acc
                self.q[I] = qv
                s += self.d[I] * qv
            self.part2[i, j] = s
        return self._sum_rows()

    @ti.kernel
    def _update_xr(self, alpha: ti.f32) -> ti.f32:
        """phi += alpha d, r -= alpha q; returns max |r|."""
        m = 0.0
        for I in ti.grouped(self.phi):
            self.phi[I] += alpha * self.d[I]
            r = self.mg_r[0][I] - alpha * self.q[I]
            self.mg_r[0][I] = r
            ti.atomic_max(m, ti.abs(r))
        return m

    @ti.kernel
    def _update_d(self, beta: ti.f32):
        for I in ti.grouped(self.d):
            self.d[I] = self.mg_z[0][I] + beta * self.d[I]

    @ti.kernel
    def _jacobi(self):
        for I in ti.grouped(self.phi):
            z = 0.0
            if self.mg_fl[0][I] != 0:
                diag, _ = self._stencil(self.phi, self.mg_fl[0], I)
                if diag > 0:
                    z = self.mg_r[0][I] / diag
            self.mg_z[0][I] = z

    @ti.kernel
    def _smooth(self, lvl: ti.template(), color: ti.i32):
        """One red (color 0) or black (1) Gauss-Seidel half-sweep of A z = r on a level."""
        r, z, fl = ti.static(self.mg_r[lvl], self.mg_z[lvl], self.mg_fl[lvl])
        for I in ti.grouped(z):
            if fl[I] != 0 and (I[0] + I[1] + I[2]) % 2 == color:
                diag, acc = self._stencil(z, fl, I)
                if diag > 0:
                    z[I] = (r[I] + acc) / diag

    @ti.kernel
    def _residual(self, lvl: ti.template()):
        """mg_t = r - A z on a level (0 off the fluid)."""
        r, z, fl, t = ti.static(self.mg_r[lvl], self.mg_z[lvl], self.mg_fl[lvl], self.mg_t[lvl])
        for I in ti.grouped(z):
            v = 0.0
            if fl[I] != 0:
                diag, acc = self._stencil(z, fl, I)
                v = r[I] - (diag * z[I] - acc)
            t[I] = v

    @ti.kernel
    def _restrict(self, lvl: ti.template()):
        """Coarse residual: half the sum of the fine residuals (mg_t) of its (up to 8) children."""
        tf, rc, flc = ti.static(self.mg_t[lvl], self.mg_r[lvl + 1], self.mg_fl[lvl + 1])
        nf = ti.static(tf.shape)
        for I in ti.grouped(rc):
            s = 0.0
            for c in range(8):
                J = I * 2 + ti.Vector([c & 1, (c >> 1) & 1, (c >> 2) & 1])
                if J[0] < nf[0] and J[1] < nf[1] and J[2] < nf[2]:
                    s += tf[J]
            rc[I] = ti.select(flc[I] != 0, 0.5 * s, 0.0)
            self.mg_z[lvl + 1][I] = 0.0

    @ti.kernel
    def _prolong(self, lvl: ti.template()):
        zc, zf, flf = ti.static(self.mg_z[lvl + 1], self.mg_z[lvl], self.mg_fl[lvl])
        for I in ti.grouped(zf):
            if flf[I] != 0:
                zf[I] += zc[I // 2]

    @ti.kernel
    def _coarsen_all(self):
        """Coarse-level fluid flags: a coarse cell is fluid when any of its children is."""
        for lvl in ti.static(range(len(self.levels) - 1)):
            fine, coarse = ti.static(self.mg_fl[lvl], self.mg_fl[lvl + 1])
            nf = ti.static(fine.shape)
            for I in ti.grouped(coarse):
                fl = 0
                for c in ti.static(ti.grouped(ti.ndrange(2, 2, 2))):
                    J = I * 2 + c
                    if J[0] < nf[0] and J[1] < nf[1] and J[2] < nf[2]:
                        if fine[J] != 0:
                            fl = 1
                coarse[I] = fl

    @ti.kernel
    def _subtract_gradient(self):
        """u -= phi[I] - phi[I - e_a] on the free faces (phi = 0 in open ghosts)."""
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                if self._free_face(a, I):
                    lo = I - self._unit(a)
                    p_hi = 0.0
                    p_lo = 0.0
                    if I[a] < n[a]:
                        p_hi = self.phi[I]
                    if I[a] > 0:
                        p_lo = self.phi[lo]
                    self.vel[a][I] -= p_hi - p_lo

    @ti.kernel
    def _max_divergence(self) -> ti.f32:
        """max |dx div u| over the cells the projection solves for (m/s): air, not sealed pockets."""
        m = 0.0
        for I in ti.grouped(self.body):
            if self.mg_fl[0][I] != 0:
                s = 0.0
                for a in ti.static(range(3)):
                    s += self.vel[a][I + self._unit(a)] - self.vel[a][I]
                ti.atomic_max(m, ti.abs(s))
        return m

    @ti.kernel
    def _face_speed(self):
        for a in ti.static(range(3)):
            self.speed[a] = 0.0
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                ti.atomic_max(self.speed[a], ti.abs(self.vel[a][I]))

    @ti.kernel
    def _cell_velocity(self):
        for I in ti.grouped(self.cvel):
            c = ti.Vector([0.0, 0.0, 0.0])
            for a in ti.static(range(3)):
                c[a] = 0.5 * (self.vel[a][I] + self.vel[a][I + self._unit(a)])
            self.cvel[I] = c
