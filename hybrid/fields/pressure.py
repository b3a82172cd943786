"""The gas grid's pressure projection: make the face velocities divergence-free.

Solves A phi = -dx div u over the cells the boundaries mark as fluid, with A the
7-point Laplacian times dx^2 (symmetric positive definite): phi = 0 in the ghost
cells beyond open faces where the air leaves (a neighbour that counts on the
diagonal), the ambient total pressure where it enters (``_stagnation``), no flux through
walls, inflow faces and bodies (a neighbour left out). phi = dt p_kin / dx (m/s),
so the update is u -= phi[i] - phi[i - 1] on the faces the projection solves for.

Conjugate gradients, preconditioned by one multigrid V-cycle (symmetric red-black
Gauss-Seidel, piecewise-constant transfers, ``PRE_SWEEPS`` per level and
``BOTTOM_SWEEPS`` at the bottom) or by Jacobi, stopping at ``tolerance`` x the
initial residual's max norm or ``max_iterations``. In a closed box the pressure is
defined up to a constant: the right-hand side and every preconditioned residual
have their mean over the fluid removed.

Determinism: dot products sum per (i, j) row, then per i, then serially over i, so
their bits do not depend on the thread count.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
from hybrid.fields.backend import _import_taichi
from hybrid.fields.gas_boundaries import OPEN, GasBoundaries
from hybrid.fields.memory import level_shapes
from hybrid.fields.stencil import corner, unit
from hybrid.scene.fields_spec import PressureSolver

ti = _import_taichi()

# Multigrid preconditioner: red-black Gauss-Seidel sweeps per level and at the bottom.
PRE_SWEEPS = 2
BOTTOM_SWEEPS = 16


@ti.data_oriented
class PressureProjection:
    """The projection of one gas grid: `vel` (the solver's 3 face fields), cells and faces from `bounds`.

    ``phi`` holds the last solution (m/s, 0 off the fluid), ``solve`` runs one projection.
    """

    def __init__(self, spec: PressureSolver, bounds: GasBoundaries, vel):
        self.spec = spec
        self.bounds = bounds
        self.vel = vel
        self.shape = bounds.shape
        self.face_shapes = bounds.face_shapes
        self.singular = bounds.singular
        nx, ny, nz = self.shape
        f32 = ti.f32
        self.phi = ti.field(f32, self.shape)
        self.d = ti.field(f32, self.shape)
        self.q = ti.field(f32, self.shape)
        self.levels = level_shapes(self.shape)
        self.mg_r = [ti.field(f32, s) for s in self.levels]  # level 0: the CG residual
        self.mg_z = [ti.field(f32, s) for s in self.levels]  # level 0: the preconditioned residual
        # 1 where the (coarse) cell is fluid; level 0 is the boundaries' own.
        self.mg_fl = [bounds.fluid] + [ti.field(ti.i32, s) for s in self.levels[1:]]
        self.mg_t = [self.q] + [ti.field(f32, s) for s in self.levels[1:]]  # level residual r - A z (scratch)
        # Per open domain face (side, then the other two axes): 1 / (1 + k), k = |u_n| dt / (2 dx) where the air
        # enters, 1 where it leaves (``_stagnation``).
        self.open_w = [ti.field(f32, (2,) + tuple(s for c, s in enumerate(self.shape) if c != a)) for a in range(3)]
        self.part2 = ti.field(f32, (nx, ny))
        self.part1 = ti.field(f32, nx)

    # ------------------------------------------------------------------ host side

    def solve(self, dt_dx: float = 0.0) -> tuple[int, float]:
        """Solve for phi and subtract its gradient from the free faces; (iterations, final residual max norm in m/s).

        `dt_dx`: the substep over the cell size (s/m) for the total-pressure condition on
        open faces where air enters (``_stagnation``); 0: p = 0 outside every open face.
        """
        p = self.spec
        L = len(self.levels)
        self._stagnation(dt_dx)
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
        return iters, rmax

    def _precondition(self) -> None:
        if self.spec.method == "cg":
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

    # ------------------------------------------------------------------ ti.func helpers

    @ti.func
    def _stencil(self, x: ti.template(), fl: ti.template(), I):
        """(diagonal, sum of fluid neighbours' x) of the 7-point operator at fluid cell I of a level."""
        n = ti.static(x.shape)
        diag = 0.0
        acc = 0.0
        for a in ti.static(range(3)):
            for side in ti.static(range(2)):
                J = I + unit(a) * (2 * side - 1)
                if 0 <= J[a] < n[a]:
                    if fl[J] != 0:
                        diag += 1.0
                        acc += x[J]
                elif self.bounds.btype[2 * a + side] == OPEN:
                    if ti.static(tuple(x.shape) == tuple(self.shape)):  # the grid itself: the face's weight
                        diag += self.open_w[a][self._plane(a, side, I)]
                    else:  # a coarse level of the preconditioner: plain p = 0 outside
                        diag += 1.0
        return diag, acc

    @ti.func
    def _plane(self, a: ti.template(), side, I):
        """Index into open_w[a] of the domain face of axis a, side 0 or 1, beside cell or face I."""
        b, c = ti.static([d for d in range(3) if d != a])
        return ti.Vector([side, I[b], I[c]])

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

    # ------------------------------------------------------------------ kernels: conjugate gradients

    @ti.kernel
    def _rhs(self) -> ti.f32:
        """r = b = -dx div u on fluid cells (0 elsewhere and where no neighbour can take flux), phi = 0; returns max |b|."""
        m = 0.0
        for I in ti.grouped(self.phi):
            b = 0.0
            if self.bounds.body[I] < 0:
                diag, _ = self._stencil(self.phi, self.mg_fl[0], I)
                if diag > 0:
                    for a in ti.static(range(3)):
                        b -= self.vel[a][I + unit(a)] - self.vel[a][I]
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
        for I in ti.grouped(self.phi):
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

    # ------------------------------------------------------------------ kernels: preconditioners

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
                J = I * 2 + corner(c)
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

    # ------------------------------------------------------------------ kernels: velocity

    @ti.kernel
    def _stagnation(self, dt_dx: ti.f32):
        """Open faces (onto still air, not ``pass_through``) where the air enters: the total-pressure condition,
        open_w and the face velocity.

        Air drawn in through an open face comes from the still air outside, so the
        pressure just outside is the ambient total pressure, -u_n^2 / 2 (kinematic;
        Bernoulli from rest), not 0; where the air leaves it is 0. With p = 0 for inflow
        too, the outside is a lossless reservoir: air leaving through one part of the
        face and coming back in through another keeps its kinetic energy, and a vortex
        over an open face (the air above a fire that has died down) spins up without
        end. With the total pressure the boundary never brings in kinetic energy.
        Linearised about this substep's u*, phi_out = k u_new with k = |u*| dt / (2 dx)
        (outward normal), so u_new = w (u* - (phi_in - 0) along the normal), w = 1 / (1 + k):
        the face velocity is scaled by w here and the open neighbour counts w, not 1, on
        the operator's diagonal (still symmetric; the coarse levels of the
        preconditioner keep 1). This is the open boundary of fire codes such as FDS (its
        OPEN vents take the total head as ambient for incoming flow).
        """
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for side in ti.static(range(2)):
                W = ti.static(self.open_w[a])
                for P in ti.grouped(ti.ndrange(*W.shape[1:])):
                    w = 1.0
                    if self.bounds.btype[2 * a + side] == OPEN and self.bounds.ambient[2 * a + side] != 0:
                        I = ti.Vector([0, 0, 0])
                        b, c = ti.static([d for d in range(3) if d != a])
                        I[a] = side * n[a]
                        I[b] = P[0]
                        I[c] = P[1]
                        u = self.vel[a][I]
                        if (side == 0 and u > 0.0) or (side == 1 and u < 0.0):
                            w = 1.0 / (1.0 + 0.5 * ti.abs(u) * dt_dx)
                            self.vel[a][I] = w * u
                    W[ti.Vector([side, P[0], P[1]])] = w

    @ti.kernel
    def _subtract_gradient(self):
        """u -= phi[I] - phi[I - e_a] on the free faces (phi = 0 in open ghosts), times open_w on open faces."""
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                if self.bounds.free_face(a, I):
                    lo = I - unit(a)
                    p_hi = 0.0
                    p_lo = 0.0
                    w = 1.0
                    if I[a] < n[a]:
                        p_hi = self.phi[I]
                    else:
                        w = self.open_w[a][self._plane(a, 1, I)]
                    if I[a] > 0:
                        p_lo = self.phi[lo]
                    else:
                        w = self.open_w[a][self._plane(a, 0, I)]
                    self.vel[a][I] -= w * (p_hi - p_lo)

    @ti.kernel
    def max_divergence(self) -> ti.f32:
        """max |dx div u| over the cells the projection solves for (m/s): air, not sealed pockets."""
        m = 0.0
        for I in ti.grouped(self.phi):
            if self.mg_fl[0][I] != 0:
                s = 0.0
                for a in ti.static(range(3)):
                    s += self.vel[a][I + unit(a)] - self.vel[a][I]
                ti.atomic_max(m, ti.abs(s))
        return m
