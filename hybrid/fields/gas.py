"""Smoke and fire on a staggered (MAC) grid: advection, buoyancy, combustion, projection.

The grid covers ``spec.domain`` from its min corner with cubic cells of size ``dx``
(``fields_spec.grid_shape``). Cell (i, j, k) holds the scalars; velocity components
live on the faces: ``u[i, j, k]`` (shape (nx+1, ny, nz)) is the x velocity (m/s) on
the face at x = i dx between cells i-1 and i, likewise ``v`` (nx, ny+1, nz) and ``w``
(nx, ny, nz+1). Scalars: ``density`` (smoke concentration), ``temperature`` (kelvin
above ambient), ``fuel`` (unburnt fuel) and ``flame`` (fuel burnt per second).

One substep (``GasSolver.advance`` takes as many as the CFL number needs):

1. mark the cells whose centre is inside a rigid body as solid, give the faces
   touching them the body's velocity and the domain faces their boundary values
   (``hybrid.fields.gas_boundaries``);
2. advect velocity and scalars (MacCormack with a min/max clamp, or semi-Lagrangian;
   RK2 back-traces) through the velocity at the start of the substep;
3. emitters, the fuel burning objects give off (``set_fuel_sources``), combustion,
   cooling and dissipation (exponential decays);
4. Boussinesq buoyancy along -gravity, a = |g| (thermal T / T_ambient -
   smoke_weight density), and vorticity confinement eps dx (N x omega), scaled down
   (``confinement_scale``) so that it never gives the air more kinetic energy than
   this substep's advection took from it;
5. viscosity (explicit diffusion, sub-cycled to stay stable), in incremental
   pressure-correction form (Goda 1979; van Kan 1986): every sub-cycle also applies
   the previous substep's pressure gradient, and the projection then solves for the
   change of pressure. Without it the split of diffusion and projection has a steady
   state of its own: the projection restores the flux as a uniform (potential) velocity
   once per substep while diffusion slows the flow near walls for the whole substep,
   so a channel flow settles as a flattened parabola that slips at the walls (about
   half the mean speed at 16 cells with substeps of 12 cell diffusion times). With the
   previous gradient inside, a steady flow is a fixed point of every sub-cycle;
6. pressure projection (``hybrid.fields.pressure``): a conjugate-gradient Poisson
   solve (multigrid- or Jacobi-preconditioned) with p = 0 outside open faces where
   the air leaves, the ambient total pressure -u_n^2 / 2 where it enters (still air
   drawn in), and no flux through walls, inflow faces and bodies, then u -= dt grad p;
7. the pressure on every fluid-body face pushes that body (``Colliders.add_impulse``).

Boundaries (walls, no-slip, open faces, inflows, bodies): ``hybrid.fields.gas_boundaries``.

Determinism: every kernel writes each element from one loop iteration, except the
impulses on bodies, which are integer atomics (order-free: ``hybrid.fields.colliders``).
Dot products sum per (i, j) row, then per i, then serially over i. So the bits do
not depend on the thread count.
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
from hybrid.fields.frames import FieldStats, GasFrame
from hybrid.fields.gas_boundaries import INFLOW, OPEN, GasBoundaries, face_kinds
from hybrid.fields.memory import gas_bytes as estimate_bytes  # noqa: F401 (re-exported)
from hybrid.fields.pressure import PressureProjection
from hybrid.fields.stencil import corner, face_grid, face_shapes, trilinear_weight, unit
from hybrid.scene.fields_spec import GasSpec, grid_shape

ti = _import_taichi()

BIG = 3.0e38


def _padded(shape) -> tuple[int, int, int]:
    return tuple(int(s) + 2 for s in shape)  # type: ignore[return-value]


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


def confinement_scale(lost: float, work: float, quad: float) -> float:
    """The share s in [0, 1] of the vorticity confinement force a substep applies.

    Confinement (Fedkiw, Stam and Jensen 2001) gives back the swirl that the
    advection's interpolation smears out. It is not a physical force, and nothing in
    it stops it from spinning still air ever faster: with nothing to dissipate it, a
    vortex grows until the CFL condition asks for hundreds of substeps (a fire that
    has died down leaves such air). Exact advection keeps the kinetic energy, so the
    confinement may give back at most what this substep's advection lost, `lost`
    (0 when it lost none). Applying s f for one substep adds s work + s^2 quad, with
    work = sum of dt f u and quad = sum of (dt f)^2 / 2 over the faces; s is the
    largest value in [0, 1] that adds no more than `lost`. Without buoyancy and
    emitters the air's kinetic energy then never grows.
    """
    budget = max(lost, 0.0)
    if work + quad <= budget:
        return 1.0
    disc = math.sqrt(max(work * work + 4.0 * quad * budget, 0.0))
    if work > 0:
        s = 2.0 * budget / (work + disc)
    elif quad > 0:
        s = (disc - work) / (2.0 * quad)
    else:
        s = 1.0
    return min(1.0, max(0.0, s))


@dataclass(frozen=True)
class GasReport:
    """What one ``advance`` did.

    substeps: gas substeps taken; pressure_iterations: most CG iterations of one
    projection; pressure_residual: largest final CG residual (max norm of the
    divergence it left, 1/s); max_divergence: max |div u| over fluid cells after the
    last projection (1/s), measured on the final velocity; confinement_scale: the
    smallest share of the vorticity confinement force a substep applied (1: all of it).
    """

    substeps: int = 0
    pressure_iterations: int = 0
    pressure_residual: float = 0.0
    max_divergence: float = 0.0
    confinement_scale: float = 1.0  # the smallest of the substeps' (``confinement_scale``)

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
        o = corner(c)
        v = F[base + o]
        val += trilinear_weight(o, fr) * v
        lo = ti.min(lo, v)
        hi = ti.max(hi, v)
    return val, lo, hi


@ti.func
def _clamped(hat, old, back, lo, hi):
    """MacCormack's corrected value hat + (old - back) / 2, clamped to [lo, hi]."""
    return ti.min(ti.max(hat + 0.5 * (old - back), lo), hi)


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
        if colliders is None:
            colliders = Colliders([], [])
        self.colliders = colliders
        self._closed = False
        self._last_dt = 1.0
        f32 = ti.f32

        # Velocity on faces: value, MacCormack intermediate, result (also diffusion scratch).
        self.face_shapes = face_shapes(self.shape)
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
        # Fuel given off by burning objects (hybrid.fields.burning), units of fuel per second per cell.
        self.fuel_source = ti.field(f32, self.shape)
        self.tvel = ti.Vector.field(3, f32, _padded(self.shape), **pad)  # cell-centred velocity for back-traces
        self.cvel = ti.Vector.field(3, f32, self.shape)  # cell-centred velocity, then confinement force
        self.omega = ti.Vector.field(3, f32, self.shape)  # vorticity, 1/s
        self.speed = ti.field(f32, 3)
        # Per (i, j) row of faces, then per i: the advection's loss of kinetic energy and the confinement's work.
        self.rows = ti.Vector.field(3, f32, (self.shape[0] + 1, self.shape[1] + 1))
        self.row_sums = ti.Vector.field(3, f32, self.shape[0] + 1)
        self.confinement_scale = 1.0
        # Kinematic pressure (m^2/s^2) of the last substep, kept for the viscous sub-cycles.
        self.p_kin = ti.field(f32, self.shape)

        # Configuration read by kernels at run time (so one compiled kernel serves every scene).
        self.geom = ti.field(f32, 8)  # dx, origin xyz, -g xyz
        n_em = max(1, len(spec.emitters))
        self.em_count = ti.field(ti.i32, ())
        self.em_shape = ti.field(ti.i32, n_em)  # 0 sphere, 1 box
        self.em_center = ti.Vector.field(3, f32, n_em)
        self.em_half = ti.Vector.field(3, f32, n_em)  # sphere: radius in [0]
        self.em_rates = ti.Vector.field(4, f32, n_em)  # density/s, temperature, heating 1/s, fuel/s
        self.em_vel = ti.Vector.field(3, f32, n_em)
        self.em_window = ti.Vector.field(3, f32, n_em)  # start, stop, sets velocity (0/1)

        # Walls, inflows and bodies (owns the solid and fluid cell flags), then the pressure solve over them.
        self.bounds = GasBoundaries(spec, self.shape, self.geom, colliders, self.vel, self.sc, self.flame)
        self.body = self.bounds.body  # -1 fluid, else the body covering the cell centre
        self.projection = PressureProjection(spec.pressure, self.bounds, self.vel)

        self._upload_config()
        self.bounds.mark_cells()
        self.bounds.enforce()
        self.report = GasReport()
        backend.acquire()

    # ------------------------------------------------------------------ set-up

    def _upload_config(self) -> None:
        spec = self.spec
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

    def set_fuel_sources(self, rate: Optional[np.ndarray]) -> None:
        """Fuel added per second to each cell (nx, ny, nz) from now on (None: none), in units of fuel
        (``combustion.heat`` kelvin each when burnt); added in fluid cells only."""
        if rate is None:
            self.fuel_source.fill(0.0)
        else:
            self.fuel_source.from_numpy(np.ascontiguousarray(np.broadcast_to(np.asarray(rate, np.float32), self.shape)))

    def temperature(self) -> np.ndarray:
        """Kelvin above ambient now, (nx, ny, nz)."""
        return _interior(self.sc[1].to_numpy())

    def solid(self) -> np.ndarray:
        """(nx, ny, nz) bool: cells whose centre a body covered at the last marking."""
        return self.body.to_numpy() >= 0

    def face_velocity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the face velocities u, v, w (m/s), shapes as in ``set_face_velocity``."""
        return tuple(_interior(f.to_numpy()) for f in self.vel)  # type: ignore[return-value]

    def pressure(self) -> np.ndarray:
        """Kinematic pressure p / air_density (m^2/s^2) of the last projection, (nx, ny, nz); 0 in solids."""
        if self.spec.viscosity > 0:
            return self.p_kin.to_numpy()
        return self.projection.phi.to_numpy() * np.float32(self.dx / max(self._last_dt, 1e-30))


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
                if shape is None:
                    continue  # a fragment slot not made yet, or a body that broke
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
        iters, resid, scale = 0, 0.0, 1.0
        for s in range(n):
            if s > 0:
                self.colliders.advance(sub)
            it, res = self._substep(sub, t + s * sub)
            iters, resid = max(iters, it), max(resid, res)
            scale = min(scale, self.confinement_scale)
        div = self.projection.max_divergence() / self.dx
        self.report = GasReport(n, iters, resid, div, scale)
        return self.report

    def project(self, dt: float = 1.0) -> GasReport:
        """Mark the bodies, set boundary velocities and make the velocity divergence-free (no time step).

        `dt` only scales the pressure (and the impulses on bodies, which this does not apply).
        """
        self.bounds.mark_cells()
        self.bounds.enforce()
        it, res = self._project(dt, stagnation=False)
        self.report = GasReport(0, it, res, self.projection.max_divergence() / self.dx)
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
        self.bounds.mark_cells()
        self.bounds.enforce()
        self.bounds.extrapolate_scalars()
        self._fill_ghosts(0)
        self._advect(s, False)
        corrected = 1 if spec.advection == "maccormack" else 0
        if corrected:
            self._fill_ghosts(1)
            self._advect(s, True)
        eps = spec.vorticity
        lost = float(self._advection_loss(corrected)) if eps > 0 else 0.0
        self._copy_back(corrected)
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
            comb.max_temperature if comb else 0.0,
        )
        self.confinement_scale = 1.0
        if eps > 0:
            self._confinement(eps * self.dx)
            self._confinement_work(dt)
            work, quad = (float(x) for x in self._total_rows()[:2])
            self.confinement_scale = confinement_scale(lost, work, quad)
        b = spec.buoyancy
        self._forces(dt, self.confinement_scale if eps > 0 else 0.0, b.thermal / spec.ambient_temperature, b.smoke_weight)
        viscous = spec.viscosity > 0
        if viscous:
            lam = spec.viscosity * dt / self.dx**2
            cycles = max(1, math.ceil(lam * 8.0))  # explicit 3-D diffusion is stable for nu h / dx^2 <= 1/6
            for _ in range(cycles):
                self._fill_ghosts(2)
                self._diffuse(lam / cycles, dt / cycles / self.dx)
                self._copy_diffused()
        self.bounds.enforce()
        it, res = self._project(dt)
        if viscous:  # phi was the change of pressure: the pressure is the sum
            self._add_pressure(self.dx / dt)
            self.bounds.impulses(self.p_kin, spec.air_density * self.dx**2 * dt)
        else:
            self.bounds.impulses(self.projection.phi, spec.air_density * self.dx**3)
        self.bounds.clear_solid_scalars()
        return it, res


    def _project(self, dt: float, stagnation: bool = True) -> tuple[int, float]:
        """Make the velocity divergence-free (``hybrid.fields.pressure``); (iterations, final residual in 1/s).
        `stagnation`: the total-pressure condition where air enters through open faces (a time step only)."""
        self._last_dt = dt
        iters, rmax = self.projection.solve(dt / self.dx if stagnation else 0.0)
        return iters, rmax / self.dx

    # ------------------------------------------------------------------ kernel helpers (ti.func)

    def _fill_ghosts(self, which: int) -> None:
        """Ghost layers: 0 velocity and scalars, 1 their MacCormack intermediates, 2 velocity only."""
        self._ghosts(which)

    @ti.kernel
    def _ghosts(self, which: ti.template()):
        vel = ti.static(self.vel_hat if which == 1 else self.vel)
        for a in ti.static(range(3)):
            self.bounds.ghost_faces(vel[a], a)
        if ti.static(which == 0):
            self._trace_velocity()
        if ti.static(which != 2):
            sc = ti.static(self.sc_hat if which == 1 else self.sc)
            for q in ti.static(range(3)):
                self.bounds.ghost_cells(sc[q], q)

    @ti.func
    def _centre_velocity(self, I):
        """Face velocities averaged to the centre of cell I (m/s)."""
        c = ti.Vector([0.0, 0.0, 0.0])
        for a in ti.static(range(3)):
            c[a] = 0.5 * (self.vel[a][I] + self.vel[a][I + unit(a)])
        return c

    @ti.func
    def _trace_velocity(self):
        """tvel = face velocities averaged to the cell centres, ghost cells included (face ghosts filled)."""
        n = ti.static(self.shape)
        for I in ti.grouped(ti.ndrange((-1, n[0] + 1), (-1, n[1] + 1), (-1, n[2] + 1))):
            self.tvel[I] = self._centre_velocity(I)

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
            o = corner(c)
            val += trilinear_weight(o, fr) * self.tvel[base + o]
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


    # ------------------------------------------------------------------ kernels: advection

    @ti.kernel
    def _advect(self, s: ti.f32, correct: ti.template()):
        """Advect velocity and scalars through the velocity at the start of the substep; s = dt / dx.

        correct False: semi-Lagrangian step (RK2 back-trace) into the *_hat arrays. correct True:
        MacCormack, new = hat + (old - back-and-forth) / 2 clamped to the corners of the
        back-traced sample, into the *_new arrays.
        """
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                g = face_grid(a, I)
                val, lo, hi = self._interp_face(self.vel[a], a, self._trace(g, s))
                if ti.static(correct):
                    back, _, _ = self._interp_face(self.vel_hat[a], a, self._trace(g, -s))
                    self.vel_new[a][I] = _clamped(self.vel_hat[a][I], self.vel[a][I], back, lo, hi)
                else:
                    self.vel_hat[a][I] = val
        out = ti.static(self.sc_new if correct else self.sc_hat)
        for I in ti.grouped(self.body):
            if self.body[I] < 0:
                g = I + 0.5
                gb = self._trace(g, s)
                gf = g
                if ti.static(correct):
                    gf = self._trace(g, -s)
                for q in ti.static(range(3)):
                    val, lo, hi = self._interp_cell(self.sc[q], q, gb)
                    if ti.static(correct):
                        back, _, _ = self._interp_cell(self.sc_hat[q], q, gf)
                        out[q][I] = _clamped(self.sc_hat[q][I], self.sc[q][I], back, lo, hi)
                    else:
                        out[q][I] = val
            else:
                for q in ti.static(range(3)):
                    out[q][I] = self.sc[q][I]

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
                 frac: ti.f32, heat: ti.f32, smoke: ti.f32, hottest: ti.f32):
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
                fuel += self.fuel_source[I] * dt
                # A cell that a burning surface gives vapour to holds that surface's flame: it burns whatever its temperature.
                if burn != 0 and (temp > ignition or self.fuel_source[I] > 0.0) and fuel > 0.0:
                    burnt = ti.min(fuel * frac, ti.max(hottest - temp, 0.0) / ti.max(heat, 1e-30))
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
                p = self.bounds.face_pos(a, I)
                for e in range(self.em_count[None]):
                    win = self.em_window[e]
                    if win[2] > 0.0 and win[0] <= t < win[1] and self._inside_emitter(e, p):
                        self.vel[a][I] = self.em_vel[e][a]

    @ti.func
    def _neighbours(self, I, b: ti.template()):
        """The cells either side of cell I along axis b, clamped into the grid, and the distance between them (m)."""
        n = ti.static(self.shape)
        ip = I + unit(b)
        im = I - unit(b)
        ip[b] = ti.min(ip[b], n[b] - 1)
        im[b] = ti.max(im[b], 0)
        return ip, im, (ip[b] - im[b]) * self.geom[0]

    @ti.kernel
    def _confinement(self, eps_dx: ti.f32):
        """Vorticity confinement force eps dx (N x omega) per fluid cell into cvel (m/s^2)."""
        for I in ti.grouped(self.cvel):
            self.cvel[I] = self._centre_velocity(I)
        for I in ti.grouped(self.omega):
            grad = ti.Matrix.zero(ti.f32, 3, 3)  # grad[a, b] = d v_a / d x_b
            for b in ti.static(range(3)):
                ip, im, h = self._neighbours(I, b)
                dv = self.cvel[ip] - self.cvel[im]
                for a in ti.static(range(3)):
                    grad[a, b] = dv[a] / h
            self.omega[I] = ti.Vector([grad[2, 1] - grad[1, 2], grad[0, 2] - grad[2, 0], grad[1, 0] - grad[0, 1]])
        for I in ti.grouped(self.cvel):
            f = ti.Vector([0.0, 0.0, 0.0])
            if self.body[I] < 0:
                eta = ti.Vector([0.0, 0.0, 0.0])
                for b in ti.static(range(3)):
                    ip, im, h = self._neighbours(I, b)
                    if h > 0:
                        eta[b] = (self.omega[ip].norm() - self.omega[im].norm()) / h
                length = eta.norm()
                if length > 1e-12:
                    f = eps_dx * (eta / length).cross(self.omega[I])
            self.cvel[I] = f

    @ti.func
    def _face_force(self, a: ti.template(), I):
        """The confinement force (cvel) on face I of axis a: the mean of the cells either side in the grid."""
        n = ti.static(self.shape)
        f = 0.0
        cnt = 0
        if I[a] > 0:
            f += self.cvel[I - unit(a)][a]
            cnt += 1
        if I[a] < n[a]:
            f += self.cvel[I][a]
            cnt += 1
        return f / cnt

    @ti.func
    def _sum_rows(self):
        """Total of `rows`: per i in parallel, then serially over i (bits independent of the thread count)."""
        m = ti.static(self.rows.shape)
        for i in self.row_sums:
            acc = ti.Vector([0.0, 0.0, 0.0])
            for j in range(m[1]):
                acc += self.rows[i, j]
            self.row_sums[i] = acc
        total = ti.Vector([0.0, 0.0, 0.0])
        ti.loop_config(serialize=True)
        for i in range(m[0]):
            total += self.row_sums[i]
        return total

    @ti.kernel
    def _advection_loss(self, corrected: ti.i32) -> ti.f32:
        """Kinetic energy per unit mass and cell volume the advection took from the air (m^2/s^2):
        half the sum over faces of vel^2 before minus after (vel_new or vel_hat, before ``_copy_back``)."""
        for i, j in self.rows:
            e = 0.0
            for a in ti.static(range(3)):
                m = ti.static(self.face_shapes[a])
                if i < m[0] and j < m[1]:
                    for k in range(m[2]):
                        old = self.vel[a][i, j, k]
                        new = ti.select(corrected != 0, self.vel_new[a][i, j, k], self.vel_hat[a][i, j, k])
                        e += 0.5 * (old * old - new * new)
            self.rows[i, j] = ti.Vector([e, 0.0, 0.0])
        return self._sum_rows()[0]

    @ti.kernel
    def _confinement_work(self, dt: ti.f32):
        """Into `rows` per row: the kinetic energy the whole confinement force would add in one substep,
        split as sum of dt f u (component 0) and sum of (dt f)^2 / 2 (component 1)."""
        for i, j in self.rows:
            lin = 0.0
            quad = 0.0
            for a in ti.static(range(3)):
                m = ti.static(self.face_shapes[a])
                if i < m[0] and j < m[1]:
                    for k in range(m[2]):
                        df = dt * self._face_force(a, ti.Vector([i, j, k]))
                        lin += df * self.vel[a][i, j, k]
                        quad += 0.5 * df * df
            self.rows[i, j] = ti.Vector([lin, quad, 0.0])

    @ti.kernel
    def _total_rows(self) -> ti.types.vector(3, ti.f32):
        return self._sum_rows()

    @ti.kernel
    def _forces(self, dt: ti.f32, confine: ti.f32, thermal: ti.f32, weight: ti.f32):
        """Buoyancy -g (thermal T - weight density) and `confine` times the confinement force (cvel), onto the faces."""
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                ga = self.geom[4 + a]  # -g along axis a
                lo = I - unit(a)
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
                    acc += confine * f / cnt
                self.vel[a][I] += dt * acc

    @ti.kernel
    def _diffuse(self, lam: ti.f32, g: ti.f32):
        """One diffusion step on the free faces: vel_new = vel + lam * (7-point Laplacian x dx^2)
        - g * (the last substep's pressure difference across the face), g = sub-cycle dt / dx.

        A neighbour face on a body stands for no slip at the body's true surface, not at
        that face (up to a cell inside the body): its value is the ghost
        v_b + (v - v_b) phi_J / phi_I, the line through the body's velocity v_b where the
        signed distance is 0 and through this face's value v (phi_I, phi_J: the signed
        distances of this face and of the neighbour; the ghost-fluid method of Fedkiw et
        al. 1999, as for Gibou et al.'s 2002 Poisson solver). The neighbour's share
        lam (1 - phi_J / phi_I) (v_b - v) is taken implicitly in v, so a face that nearly
        touches the surface (phi_I -> 0) is pulled to v_b without the explicit step's
        stability limit. A linear profile ending at the true surface is a steady state.
        """
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                val = self.vel[a][I]
                if self.bounds.free_face(a, I):
                    acc = 0.0
                    pull = 0.0  # sum of lam (1 - phi_J / phi_I) over neighbours on bodies
                    target = 0.0  # the same weights times the body's velocity
                    for b in ti.static(range(3)):
                        for sgn in ti.static((-1, 1)):
                            J = I + sgn * unit(b)
                            nb = self.vel[a][J]
                            body = -1
                            if self.colliders.count > 0:
                                body = self.bounds.face_body(a, J)
                            if body >= 0:
                                pos_i = self.bounds.face_pos(a, I)
                                pos_j = self.bounds.face_pos(a, J)
                                phi_i = ti.max(self.colliders.sdf(body, pos_i), 1e-3 * self.geom[0])
                                phi_j = self.colliders.sdf(body, pos_j)
                                if phi_j < phi_i:
                                    w = lam * (1.0 - phi_j / phi_i)
                                    pull += w
                                    target += w * self.colliders.velocity(body, pos_j)[a]
                                    nb = val  # its share is in pull / target instead
                            acc += nb
                    p_hi = 0.0
                    p_lo = 0.0
                    if I[a] < n[a]:
                        p_hi = self.p_kin[I]
                    if I[a] > 0:
                        p_lo = self.p_kin[I - unit(a)]
                    val = (val + lam * (acc - 6.0 * val) - g * (p_hi - p_lo) + target) / (1.0 + pull)
                self.vel_new[a][I] = val

    @ti.kernel
    def _add_pressure(self, scale: ti.f32):
        """p_kin += scale * phi on the cells the projection solved (scale = dx / dt), 0 elsewhere."""
        for I in ti.grouped(self.p_kin):
            self.p_kin[I] = ti.select(self.bounds.fluid[I] != 0, self.p_kin[I] + scale * self.projection.phi[I], 0.0)

    @ti.kernel
    def _copy_diffused(self):
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                self.vel[a][I] = self.vel_new[a][I]


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
            self.cvel[I] = self._centre_velocity(I)
