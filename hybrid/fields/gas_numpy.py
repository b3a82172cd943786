"""The gas step of ``hybrid.fields.gas`` written with vectorised NumPy: the benchmark baseline.

Same grid, same order of operations, same formulas: ghost layers, RK2 back-traces
through the cell-centred velocity, MacCormack with the min/max clamp (or
semi-Lagrangian), emitters, combustion, cooling and dissipation, buoyancy, vorticity
confinement, explicit viscosity, and the same preconditioned CG projection (the same
V-cycle or Jacobi preconditioner, tolerance and iteration cap). Rigid bodies are not
supported (every cell is fluid). float32 throughout, like the Taichi solver; results
agree with it to float32 rounding (sums are ordered differently).
"""

from __future__ import annotations

import math

import numpy as np

from hybrid.fields.errors import FieldError
from hybrid.fields.gas import confinement_scale
from hybrid.fields.gas_boundaries import INFLOW, NO_SLIP, OPEN, WALL, ambient_faces, face_kinds, inflow_values
from hybrid.fields.memory import level_shapes
from hybrid.fields.pressure import BOTTOM_SWEEPS, PRE_SWEEPS
from hybrid.fields.stencil import face_shapes
from hybrid.scene.fields_spec import GasSpec, grid_shape

F32 = np.float32


def _unit(a: int) -> np.ndarray:
    e = np.zeros(3, np.int64)
    e[a] = 1
    return e


class NumpyGas:
    """Face velocities u, v, w and scalars density, temperature, fuel, flame as in ``GasSolver`` (no ghosts here)."""

    def __init__(self, spec: GasSpec, gravity=(0.0, 0.0, -9.81)):
        self.spec = spec
        self.shape, self.dx = grid_shape(spec.domain, spec.resolution)
        self.origin = np.asarray(spec.domain.min, np.float64)
        self.gravity = np.asarray(gravity, np.float64)
        self.kinds = face_kinds(spec)
        self.ambient = ambient_faces(spec)
        self.singular = OPEN not in self.kinds
        self.face_shapes = face_shapes(self.shape)
        self.vel = [np.zeros(s, F32) for s in self.face_shapes]
        self.sc = [np.zeros(self.shape, F32) for _ in range(3)]
        self.flame = np.zeros(self.shape, F32)
        self.inflow_vel, self.inflow_sc = inflow_values(spec)
        self.levels = level_shapes(self.shape)
        self.phi = np.zeros(self.shape, F32)
        self._enforce()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _with_ghosts(A: np.ndarray, ghost) -> np.ndarray:
        """`A` padded by one ghost layer, axis by axis: ghost(b, side, inner) gives the slab beyond face 2 b + side
        from the inner slab next to it (a copy: edge and corner ghosts combine the rules)."""
        P = np.zeros(tuple(s + 2 for s in A.shape), F32)
        P[1:-1, 1:-1, 1:-1] = A
        for b in range(3):
            for side in range(2):
                g = 0 if side == 0 else P.shape[b] - 1
                j = 1 if side == 0 else P.shape[b] - 2
                idx = [slice(None)] * 3
                idx[b] = g
                P[tuple(idx)] = ghost(b, side, np.take(P, j, axis=b))
        return P

    def _ghost_faces(self, F: np.ndarray, a: int) -> np.ndarray:
        def ghost(b: int, side: int, src: np.ndarray) -> np.ndarray:
            kind = self.kinds[2 * b + side]
            if b != a and kind == NO_SLIP:
                return -src
            if b != a and kind == INFLOW:
                return F32(2.0) * self.inflow_vel[2 * b + side, a] - src
            if b != a and kind == OPEN and self.ambient[2 * b + side]:
                return np.where(self._enters(a, b, side), F32(0.0), src).astype(F32)
            return src

        return self._with_ghosts(F, ghost)

    def _enters(self, a: int, b: int, side: int) -> np.ndarray:
        """Over the ghost slab of velocity component a beyond open face (b, side), ghosts of the other axes
        included: whether the air crosses that face inwards (its normal velocity, averaged over the two cells
        either side of each face of component a)."""
        n = self.shape
        plane = np.take(self.vel[b], 0 if side == 0 else n[b], axis=b)  # axes: the two besides b, in order
        idx = []
        for c in range(3):
            if c == b:
                continue
            j = np.arange(-1, self.face_shapes[a][c] + 1)  # the slab's index along c, its ghosts included
            if c == a:
                idx.append((np.clip(j - 1, 0, n[c] - 1), np.clip(j, 0, n[c] - 1)))
            else:
                idx.append((np.clip(j, 0, n[c] - 1),) * 2)
        u = F32(0.5) * (plane[np.ix_(idx[0][0], idx[1][0])] + plane[np.ix_(idx[0][1], idx[1][1])])
        return u > 0 if side == 0 else u < 0

    def _ghost_cells(self, S: np.ndarray, q: int) -> np.ndarray:
        def ghost(b: int, side: int, src: np.ndarray) -> np.ndarray:
            kind = self.kinds[2 * b + side]
            if kind == OPEN:
                return np.zeros_like(src)
            if kind == INFLOW:
                return np.full_like(src, self.inflow_sc[2 * b + side, q])
            return src

        return self._with_ghosts(S, ghost)

    @staticmethod
    def _interp(P: np.ndarray, n, s: np.ndarray, bounds: bool = False):
        """Trilinear sample of padded array P (logical size n, ghosts at -1 and n) at index-space points s (N, 3)."""
        s = s.copy()
        base = np.empty(s.shape, np.int64)
        for b in range(3):
            s[:, b] = np.minimum(np.maximum(s[:, b], F32(-1.0)), F32(n[b]))
            base[:, b] = np.minimum(np.floor(s[:, b]).astype(np.int64), n[b] - 1)
        fr = (s - base.astype(F32)).astype(F32)
        val = np.zeros(len(s), F32)
        lo = np.full(len(s), np.inf, F32)
        hi = np.full(len(s), -np.inf, F32)
        for c in range(8):
            o = np.array([c & 1, (c >> 1) & 1, (c >> 2) & 1], F32)
            wv = o * fr + (1 - o) * (F32(1.0) - fr)
            idx = base + o.astype(np.int64) + 1
            v = P[idx[:, 0], idx[:, 1], idx[:, 2]]
            val += (wv[:, 0] * wv[:, 1] * wv[:, 2]).astype(F32) * v
            if bounds:
                lo = np.minimum(lo, v)
                hi = np.maximum(hi, v)
        return (val, lo, hi) if bounds else val

    def _velocity_at(self, T: list[np.ndarray], g: np.ndarray) -> np.ndarray:
        s = g - F32(0.5)
        return np.stack([self._interp(T[a], self.shape, s) for a in range(3)], axis=1)

    def _trace(self, T, g: np.ndarray, s: float) -> np.ndarray:
        s = F32(s)
        p = g
        v = np.zeros_like(g)
        for _ in range(2):
            v = self._velocity_at(T, p)
            p = g - F32(0.5) * s * v
        return g - s * v

    def _positions(self, a: int | None) -> np.ndarray:
        shape = self.shape if a is None else self.face_shapes[a]
        idx = np.indices(shape).reshape(3, -1).T.astype(F32)
        g = idx + F32(0.5)
        if a is not None:
            g[:, a] -= F32(0.5)
        return g

    # ------------------------------------------------------------------ step

    def _enforce(self) -> None:
        for a in range(3):
            F = self.vel[a]
            for side in range(2):
                f = 2 * a + side
                idx = [slice(None)] * 3
                idx[a] = 0 if side == 0 else F.shape[a] - 1
                if self.kinds[f] in (WALL, NO_SLIP):
                    F[tuple(idx)] = 0.0
                elif self.kinds[f] == INFLOW:
                    F[tuple(idx)] = self.inflow_vel[f, a]

    def _advect(self, dt: float) -> None:
        s = dt / self.dx
        V = [self._ghost_faces(self.vel[a], a) for a in range(3)]
        S = [self._ghost_cells(self.sc[q], q) for q in range(3)]
        n = self.shape
        T = []  # cell-centred trace velocity with ghosts, component-wise padded (n+2)
        for a in range(3):
            e = _unit(a)
            hi = tuple(slice(e[b], n[b] + 2 + e[b]) for b in range(3))
            lo = tuple(slice(0, n[b] + 2) for b in range(3))
            T.append((F32(0.5) * (V[a][lo] + V[a][hi])).astype(F32))
        # T[a] covers cells -1..n (size n+2): same layout as a padded cell array.
        mac = self.spec.advection == "maccormack"
        new_vel, new_sc = [], []
        for a in range(3):
            g = self._positions(a)
            m = self.face_shapes[a]
            sg = g - F32(0.5)
            sg[:, a] += F32(0.5)
            gb = self._trace(T, g, s)
            sb = gb - F32(0.5)
            sb[:, a] += F32(0.5)
            hat, lo, hi = self._interp(V[a], m, sb, bounds=True)
            new_vel.append((hat.reshape(m), lo.reshape(m), hi.reshape(m), g))
        gc = self._positions(None)
        gbc = self._trace(T, gc, s)
        for q in range(3):
            hat, lo, hi = self._interp(S[q], n, gbc - F32(0.5), bounds=True)
            new_sc.append((hat.reshape(n), lo.reshape(n), hi.reshape(n)))
        if not mac:
            self.vel = [h for h, _, _, _ in new_vel]
            self.sc = [h for h, _, _ in new_sc]
            return
        Vh = [self._ghost_faces(h, a) for a, (h, _, _, _) in enumerate(new_vel)]
        Sh = [self._ghost_cells(h, q) for q, (h, _, _) in enumerate(new_sc)]
        out_vel = []
        for a in range(3):
            hat, lo, hi, g = new_vel[a]
            m = self.face_shapes[a]
            gf = self._trace(T, g, -s)
            sf = gf - F32(0.5)
            sf[:, a] += F32(0.5)
            back = self._interp(Vh[a], m, sf).reshape(m)
            out_vel.append(np.minimum(np.maximum(hat + F32(0.5) * (self.vel[a] - back), lo), hi).astype(F32))
        gfc = self._trace(T, gc, -s)
        out_sc = []
        for q in range(3):
            hat, lo, hi = new_sc[q]
            back = self._interp(Sh[q], n, gfc - F32(0.5)).reshape(n)
            out_sc.append(np.minimum(np.maximum(hat + F32(0.5) * (self.sc[q] - back), lo), hi).astype(F32))
        self.vel, self.sc = out_vel, out_sc

    def _sources(self, dt: float, t: float) -> None:
        spec = self.spec
        dt32, t32 = F32(dt), F32(t)
        dens, temp, fuel = self.sc
        centres = self.origin.astype(F32) + F32(self.dx) * (np.indices(self.shape).transpose(1, 2, 3, 0) + F32(0.5))
        for em in spec.emitters:
            stop = F32(3.0e38) if em.stop is None else F32(em.stop)
            if not (F32(em.start) <= t32 < stop):
                continue
            inside = self._inside(em, centres)
            dens = np.where(inside, dens + F32(em.density) * dt32, dens)
            k = F32(1.0) - np.exp(-F32(em.heating) * dt32)
            temp = np.where(inside, temp + (F32(em.temperature) - temp) * k, temp)
            fuel = np.where(inside, fuel + F32(em.fuel) * dt32, fuel)
        flame = np.zeros(self.shape, F32)
        comb = spec.combustion
        if comb is not None:
            frac = F32(1.0 - math.exp(-comb.burn_rate * dt))
            burning = (temp > F32(comb.ignition_temperature)) & (fuel > 0)
            room = np.maximum(F32(comb.max_temperature) - temp, F32(0.0)) / F32(max(comb.heat, 1e-30))
            burnt = np.where(burning, np.minimum(fuel * frac, room), F32(0.0))
            fuel = fuel - burnt
            temp = temp + F32(comb.heat) * burnt
            dens = dens + F32(comb.smoke) * burnt
            flame = np.where(burning, burnt / dt32, F32(0.0))
        self.sc = [
            (dens * F32(math.exp(-spec.dissipation * dt))).astype(F32),
            (temp * F32(math.exp(-spec.cooling * dt))).astype(F32),
            fuel.astype(F32),
        ]
        self.flame = flame.astype(F32)
        for em in spec.emitters:
            stop = F32(3.0e38) if em.stop is None else F32(em.stop)
            if not any(c != 0 for c in em.velocity) or not (F32(em.start) <= t32 < stop):
                continue
            for a in range(3):
                pos = self.origin.astype(F32) + F32(self.dx) * self._positions(a).reshape(*self.face_shapes[a], 3)
                self.vel[a] = np.where(self._inside(em, pos), F32(em.velocity[a]), self.vel[a])

    @staticmethod
    def _inside(em, p: np.ndarray) -> np.ndarray:
        c = np.asarray(em.center, F32)
        if em.shape == "sphere":
            return ((p - c) ** 2).sum(axis=-1) < F32(em.radius) ** 2
        half = np.asarray(em.size, F32) / F32(2.0)
        return np.all(np.abs(p - c) < half, axis=-1)

    def _confinement(self, eps_dx: float) -> np.ndarray:
        n = self.shape
        c = np.stack([F32(0.5) * (np.take(self.vel[a], range(n[a]), axis=a) + np.take(self.vel[a], range(1, n[a] + 1), axis=a)) for a in range(3)], axis=-1)

        def diff(A: np.ndarray, b: int) -> np.ndarray:
            i = np.arange(n[b])
            ip, im = np.minimum(i + 1, n[b] - 1), np.maximum(i - 1, 0)
            h = ((ip - im) * F32(self.dx)).astype(F32)
            shape = [1, 1, 1] + [1] * (A.ndim - 3)
            shape[b] = n[b]
            return (np.take(A, ip, axis=b) - np.take(A, im, axis=b)) / h.reshape(shape)

        grad = [diff(c, b) for b in range(3)]  # grad[b][..., a] = d c_a / d x_b
        omega = np.stack(
            [grad[1][..., 2] - grad[2][..., 1], grad[2][..., 0] - grad[0][..., 2], grad[0][..., 1] - grad[1][..., 0]], axis=-1
        ).astype(F32)
        mag = np.sqrt((omega * omega).sum(axis=-1)).astype(F32)
        eta = np.stack([diff(mag, b) for b in range(3)], axis=-1).astype(F32)
        length = np.sqrt((eta * eta).sum(axis=-1))
        N = np.where(length[..., None] > 1e-12, eta / np.maximum(length, F32(1e-30))[..., None], F32(0.0))
        return np.where(length[..., None] > 1e-12, F32(eps_dx) * np.cross(N, omega), F32(0.0)).astype(F32)

    def _energy(self) -> float:
        """Half the sum of the face velocities squared (kinetic energy per unit mass and cell volume)."""
        return 0.5 * sum(float((v.astype(np.float64) ** 2).sum()) for v in self.vel)

    def _face_mean(self, x: np.ndarray, a: int) -> np.ndarray:
        """Cell values averaged onto the faces of axis a (the one cell inside at the domain's faces)."""
        n = self.shape
        pad = [(0, 0)] * 3
        pad[a] = (1, 1)
        p = np.pad(x, pad)
        total = np.take(p, range(n[a] + 1), axis=a) + np.take(p, range(1, n[a] + 2), axis=a)
        cnt = np.full(n[a] + 1, F32(2.0))
        cnt[0] = cnt[-1] = 1.0
        shape = [1, 1, 1]
        shape[a] = n[a] + 1
        return (total / cnt.reshape(shape)).astype(F32)

    def _forces(self, dt: float, force: np.ndarray | None) -> None:
        spec = self.spec
        thermal = F32(spec.buoyancy.thermal / spec.ambient_temperature)
        weight = F32(spec.buoyancy.smoke_weight)
        dens, temp = self.sc[0], self.sc[1]
        n = self.shape
        for a in range(3):
            ga = F32(-self.gravity[a])
            pad = [(0, 0)] * 3
            pad[a] = (1, 1)
            cnt = np.full(n[a] + 1, F32(2.0))
            cnt[0] = cnt[-1] = 1.0
            shape = [1, 1, 1]
            shape[a] = n[a] + 1
            cnt = cnt.reshape(shape)

            def face_sum(x):
                p = np.pad(x, pad)
                return np.take(p, range(n[a] + 1), axis=a) + np.take(p, range(1, n[a] + 2), axis=a)

            acc = ga * (thermal * face_sum(temp) - weight * face_sum(dens)) / cnt
            if force is not None:
                acc = acc + self._face_mean(force[..., a], a)
            self.vel[a] = (self.vel[a] + F32(dt) * acc).astype(F32)

    def _free_mask(self, a: int) -> np.ndarray:
        m = np.ones(self.face_shapes[a], bool)
        for side in range(2):
            if self.kinds[2 * a + side] != OPEN:
                idx = [slice(None)] * 3
                idx[a] = 0 if side == 0 else -1
                m[tuple(idx)] = False
        return m

    def _diffuse(self, lam: float) -> None:
        out = []
        for a in range(3):
            P = self._ghost_faces(self.vel[a], a)
            c = P[1:-1, 1:-1, 1:-1]
            acc = np.zeros_like(c)
            for b in range(3):
                for d in (1, -1):
                    sl = [slice(1, -1)] * 3
                    sl[b] = slice(1 + d, P.shape[b] - 1 + d)
                    acc = acc + P[tuple(sl)]
            new = c + F32(lam) * (acc - F32(6.0) * c)
            out.append(np.where(self._free_mask(a), new, c).astype(F32))
        self.vel = out

    # ------------------------------------------------------------------ projection

    def _stencil(self, x: np.ndarray):
        """(diagonal, sum of neighbours) of the 7-point operator, all-fluid grid of x's shape."""
        n = x.shape
        diag = np.zeros(n, F32)
        acc = np.zeros(n, F32)
        for a in range(3):
            for side in range(2):
                d = 2 * side - 1
                p = np.pad(x, [(1, 1) if b == a else (0, 0) for b in range(3)])
                sl = [slice(None)] * 3
                sl[a] = slice(1 + d, n[a] + 1 + d)
                acc = acc + p[tuple(sl)]
                ones = np.ones(n, F32)
                edge = [slice(None)] * 3
                edge[a] = 0 if side == 0 else n[a] - 1
                if self.kinds[2 * a + side] != OPEN:
                    ones[tuple(edge)] = 0.0
                elif tuple(n) == tuple(self.shape):  # the grid itself: the open face's weight (project)
                    ones[tuple(edge)] = self.open_w[a][side]
                diag = diag + ones
        return diag, acc

    def _apply(self, x):
        diag, acc = self._stencil(x)
        return diag * x - acc

    def _smooth(self, r, z, color):
        diag, acc = self._stencil(z)
        par = np.indices(z.shape).sum(axis=0) % 2 == color
        return np.where(par & (diag > 0), (r + acc) / np.maximum(diag, F32(1.0)), z).astype(F32)

    def _vcycle(self, r0: np.ndarray) -> np.ndarray:
        L = len(self.levels)
        r = [r0] + [None] * (L - 1)
        z = [None] * L
        for lvl in range(L - 1):
            z[lvl] = np.zeros(self.levels[lvl], F32)
            for _ in range(PRE_SWEEPS):
                z[lvl] = self._smooth(r[lvl], z[lvl], 0)
                z[lvl] = self._smooth(r[lvl], z[lvl], 1)
            t = r[lvl] - self._apply(z[lvl])
            nc = self.levels[lvl + 1]
            pad = np.zeros(tuple(2 * s for s in nc), F32)
            pad[: t.shape[0], : t.shape[1], : t.shape[2]] = t
            r[lvl + 1] = (F32(0.5) * pad.reshape(nc[0], 2, nc[1], 2, nc[2], 2).sum(axis=(1, 3, 5))).astype(F32)
        zb = np.zeros(self.levels[-1], F32)
        for order in ((0, 1), (1, 0)):
            for _ in range(BOTTOM_SWEEPS):
                for color in order:
                    zb = self._smooth(r[-1], zb, color)
        z[-1] = zb
        for lvl in reversed(range(L - 1)):
            n = self.levels[lvl]
            up = z[lvl + 1].repeat(2, 0).repeat(2, 1).repeat(2, 2)[: n[0], : n[1], : n[2]]
            z[lvl] = z[lvl] + up
            for _ in range(PRE_SWEEPS):
                z[lvl] = self._smooth(r[lvl], z[lvl], 1)
                z[lvl] = self._smooth(r[lvl], z[lvl], 0)
        return z[0]

    def _precondition(self, r: np.ndarray) -> np.ndarray:
        if self.spec.pressure.method == "cg":
            diag, _ = self._stencil(r)
            z = np.where(diag > 0, r / np.maximum(diag, F32(1.0)), F32(0.0)).astype(F32)
        else:
            z = self._vcycle(r)
        if self.singular:
            z = z - F32(z.sum(dtype=F32) / F32(z.size))
        return z

    def _stagnation(self, dt_dx: float) -> None:
        """The total-pressure condition where air enters through open faces (``PressureProjection._stagnation``)."""
        n = self.shape
        self.open_w = [[None, None] for _ in range(3)]
        for a in range(3):
            for side in range(2):
                idx = [slice(None)] * 3
                idx[a] = 0 if side == 0 else n[a]
                u = self.vel[a][tuple(idx)]
                w = np.ones(u.shape, F32)
                if self.kinds[2 * a + side] == OPEN and self.ambient[2 * a + side]:
                    inflow = u > 0 if side == 0 else u < 0
                    w = np.where(inflow, F32(1.0) / (F32(1.0) + F32(0.5) * np.abs(u) * F32(dt_dx)), F32(1.0)).astype(F32)
                    self.vel[a][tuple(idx)] = (w * u).astype(F32)
                self.open_w[a][side] = w

    def project(self, dt_dx: float = 0.0) -> tuple[int, float]:
        """Make the face velocities divergence-free; returns (iterations, final residual max norm / dx in 1/s)."""
        p = self.spec.pressure
        self._stagnation(dt_dx)
        b = -sum(np.diff(self.vel[a], axis=a) for a in range(3)).astype(F32)
        if self.singular:
            b = b - F32(b.sum(dtype=F32) / F32(b.size))
        x = np.zeros(self.shape, F32)
        r = b.astype(F32)
        r0 = float(np.abs(r).max())
        iters, rmax = 0, r0
        if r0 > 0:
            target = p.tolerance * r0
            z = self._precondition(r)
            rz = float(np.dot(r.ravel(), z.ravel()))
            d = z.copy()
            while iters < p.max_iterations:
                q = self._apply(d)
                dq = float(np.dot(d.ravel(), q.ravel()))
                iters += 1
                if not dq > 0:
                    break
                alpha = F32(rz / dq)
                x = x + alpha * d
                r = r - alpha * q
                rmax = float(np.abs(r).max())
                if rmax <= target:
                    break
                z = self._precondition(r)
                rz_new = float(np.dot(r.ravel(), z.ravel()))
                beta = F32(rz_new / rz if rz != 0 else 0.0)
                rz = rz_new
                d = z + beta * d
        self.phi = x
        n = self.shape
        for a in range(3):
            pad = [(0, 0)] * 3
            pad[a] = (1, 1)
            P = np.pad(x, pad)
            grad = np.take(P, range(1, n[a] + 2), axis=a) - np.take(P, range(0, n[a] + 1), axis=a)
            for side in range(2):
                idx = [slice(None)] * 3
                idx[a] = 0 if side == 0 else n[a]
                grad[tuple(idx)] *= self.open_w[a][side]
            self.vel[a] = np.where(self._free_mask(a), self.vel[a] - grad, self.vel[a]).astype(F32)
        return iters, rmax / self.dx

    def substep(self, dt: float, t: float) -> tuple[int, float]:
        spec = self.spec
        self._enforce()
        before = self._energy()
        self._advect(dt)
        lost = before - self._energy()
        self._sources(dt, t)
        force = None
        self.confinement_scale = 1.0
        if spec.vorticity > 0:
            force = self._confinement(spec.vorticity * self.dx)
            faces = [self._face_mean(force[..., a], a) for a in range(3)]
            work = sum(float((F32(dt) * f).astype(np.float64).ravel() @ v.astype(np.float64).ravel()) for f, v in zip(faces, self.vel))
            quad = sum(0.5 * float(((F32(dt) * f).astype(np.float64) ** 2).sum()) for f in faces)
            self.confinement_scale = confinement_scale(lost, work, quad)
            force = (F32(self.confinement_scale) * force).astype(F32)
        self._forces(dt, force)
        if spec.viscosity > 0:
            lam = spec.viscosity * dt / self.dx**2
            cycles = max(1, math.ceil(lam * 8.0))
            for _ in range(cycles):
                self._diffuse(lam / cycles)
        self._enforce()
        return self.project(dt / self.dx)

    def advance(self, dt: float, t: float) -> int:
        """Advance `dt` seconds in CFL substeps (as ``GasSolver.advance``); returns the substep count."""
        speed = max(float(np.sqrt(sum(float(np.abs(v).max()) ** 2 for v in self.vel))), self.spec.prescribed_speed)
        n = max(1, math.ceil(dt * speed / (self.spec.cfl * self.dx) - 1e-9))
        if n > self.spec.max_substeps:
            raise FieldError(f"the gas needs {n} substeps but fields.gas.max_substeps allows {self.spec.max_substeps}")
        for s in range(n):
            self.substep(dt / n, t + s * dt / n)
        return n
