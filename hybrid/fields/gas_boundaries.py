"""The gas grid's boundaries: the six domain faces and the rigid bodies inside the domain.

Face kinds (one per domain face, in ``FACE_NAMES`` order): ``wall``/``free_slip``
(normal velocity 0, tangential velocity mirrored into the ghost cells: no shear),
``no_slip`` (tangential velocity negated in the ghost: 0 on the wall), ``open``
(velocity extrapolated with zero gradient where the air leaves; where it enters it
comes from the still ambient air outside: tangential velocity 0 and ambient (0)
scalars in the ghosts, and the pressure outside is the ambient one where the air
leaves and the ambient total pressure, -|u_n|^2 / 2 (kinematic), where it enters:
``hybrid.fields.pressure``), ``pass_through`` (a cut through a flow that goes on
beyond the domain, such as a channel: pressure 0 outside and velocity extrapolated
with zero gradient both ways, so air coming in brings the momentum it has) and inflow (the normal velocity is the
inflow's, the ghost tangential velocity makes the wall value the inflow's, and the
ghost scalars are the inflow's density and temperature) and ``moving_wall`` (normal
velocity 0, the ghost tangential velocity reflected about the wall's, so the value on
the face itself is the wall's: no slip at the true wall; scalars zero gradient).

Bodies: a cell whose centre is inside a rigid body is solid; the faces touching it
take the body's velocity, its scalars are the mean of its fluid neighbours' while
the gas is advected, and the pressure on its fluid faces pushes the body.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
from typing import Optional

import numpy as np

from hybrid.fields.backend import _import_taichi
from hybrid.fields.colliders import Colliders
from hybrid.fields.stencil import face_grid, face_shapes, unit
from hybrid.scene.fields_spec import FACE_NAMES, GasSpec, Inflow

ti = _import_taichi()

# Face kinds (one per domain face, x_min, x_max, y_min, y_max, z_min, z_max).
WALL, NO_SLIP, OPEN, INFLOW, MOVING = 0, 1, 2, 3, 4
_KIND = {"wall": WALL, "free_slip": WALL, "no_slip": NO_SLIP, "open": OPEN, "pass_through": OPEN}


def face_kinds(spec: GasSpec) -> list[int]:
    """The six domain faces' kinds (WALL, NO_SLIP, OPEN, INFLOW, MOVING) in FACE_NAMES order."""
    out = []
    for name in FACE_NAMES:
        face = spec.boundaries.face(name)
        out.append(_KIND[face] if isinstance(face, str) else INFLOW if isinstance(face, Inflow) else MOVING)
    return out


def ambient_faces(spec: GasSpec) -> list[bool]:
    """Per face, in FACE_NAMES order: whether it opens onto still ambient air (``open``; a ``pass_through``
    face is open too, but the air coming in through it brings the momentum it has)."""
    return [spec.boundaries.face(name) == "open" for name in FACE_NAMES]


def inflow_values(spec: GasSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per face (6, 3) float32: the velocity of an inflow or moving wall (m/s), and the density, temperature,
    fuel an inflow carries in (0 elsewhere)."""
    velocity = np.zeros((6, 3), np.float32)
    scalars = np.zeros((6, 3), np.float32)
    for f, name in enumerate(FACE_NAMES):
        face = spec.boundaries.face(name)
        if not isinstance(face, str):
            velocity[f] = face.velocity
        if isinstance(face, Inflow):
            scalars[f] = (face.density, face.temperature, 0.0)
    return velocity, scalars


def _ghost_ranges(shape, axis: int):
    """ndrange bounds of the two ghost slabs across `axis` (0 low, 1 high), spanning the ghosts of the other axes."""
    return tuple((0, 2) if c == axis else (-1, int(shape[c]) + 1) for c in range(3))


@ti.func
def _ghost_and_inner(I, b: ti.template(), m: ti.template()):
    """For I in the ghost slabs across axis b (``_ghost_ranges``; I[b] is the side, 0 low or 1 high) of an
    array of shape m: the ghost index, and the index of the inner layer next to it."""
    side = I[b]
    G = I
    G[b] = side * (m[b] + 1) - 1
    J = I
    J[b] = side * (m[b] - 1)
    return G, J


@ti.data_oriented
class GasBoundaries:
    """Boundary rules of one gas grid, acting on the solver's arrays.

    shape: cells (nx, ny, nz); geom: the solver's (8,) f32 field, cell size dx then the
    grid origin (3) first; colliders: the rigid bodies; vel (3 face fields with ghosts),
    sc (3 scalar fields with ghosts) and flame: the solver's state.

    Owns ``body`` (i32 per cell: -1 fluid, else the body covering the cell centre) and
    ``fluid`` (i32 per cell: 1 where the pressure projection solves, air that is not a
    sealed pocket).
    """

    def __init__(self, spec: GasSpec, shape, geom, colliders: Colliders, vel, sc, flame):
        self.kinds = face_kinds(spec)
        self.singular = OPEN not in self.kinds  # closed box: pressure defined up to a constant
        self.shape = tuple(int(s) for s in shape)
        self.face_shapes = face_shapes(self.shape)
        self.geom = geom
        self.colliders = colliders
        self.vel, self.sc, self.flame = vel, sc, flame
        self.body = ti.field(ti.i32, self.shape)
        self.fluid = ti.field(ti.i32, self.shape)
        self.btype = ti.field(ti.i32, 6)
        self.inflow_vel = ti.Vector.field(3, ti.f32, 6)
        self.inflow_sc = ti.Vector.field(3, ti.f32, 6)  # density, temperature, fuel carried in
        self.btype.from_numpy(np.asarray(self.kinds, np.int32))
        self.ambient = ti.field(ti.i32, 6)  # 1: an open face onto still air (ambient_faces)
        self.ambient.from_numpy(np.asarray(ambient_faces(spec), np.int32))
        inflow_vel, inflow_sc = inflow_values(spec)
        self.inflow_vel.from_numpy(inflow_vel)
        self.inflow_sc.from_numpy(inflow_sc)

    # ------------------------------------------------------------------ ti.func helpers

    @ti.func
    def face_pos(self, a: ti.template(), I):
        """World position (m) of face I of axis a."""
        dx = self.geom[0]
        org = ti.Vector([self.geom[1], self.geom[2], self.geom[3]])
        return org + dx * face_grid(a, I)

    @ti.func
    def kind(self, I):
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
    def free_face(self, a: ti.template(), I):
        """Whether face I of axis a is solved for by the projection (neither side a body, wall or inflow)."""
        return self.kind(I - unit(a)) != 1 and self.kind(I) != 1

    @ti.func
    def face_body(self, a: ti.template(), J):
        """The body whose cell face J of axis a touches (its velocity was set from that body), -1 for any
        other face: in the fluid, on the domain's faces or in the ghost layer."""
        n = ti.static(self.shape)
        m = ti.static(self.face_shapes[a])
        b = -1
        if 0 <= J[0] < m[0] and 0 <= J[1] < m[1] and 0 <= J[2] < m[2]:
            if J[a] > 0:
                b = self.body[J - unit(a)]
            if b < 0 and J[a] < n[a]:
                b = self.body[J]
        return b

    @ti.func
    def ghost_faces(self, F: ti.template(), a: ti.template()):
        """Fill the ghost layer of velocity component a: zero gradient along a; across the other axes mirrored
        (free slip, pass_through, open where the air leaves), 0 (open where it enters: still ambient air), negated
        (no slip) or
        reflected about the inflow's or moving wall's tangential velocity. Axis by axis,
        so edge and corner ghosts combine the rules."""
        for b in ti.static(range(3)):
            rng = ti.static(_ghost_ranges(self.face_shapes[a], b))
            for I in ti.grouped(ti.ndrange(rng[0], rng[1], rng[2])):
                G, J = _ghost_and_inner(I, b, ti.static(self.face_shapes[a]))
                val = F[J]
                if ti.static(b != a):
                    f = 2 * b + I[b]
                    t = self.btype[f]
                    if t == NO_SLIP:
                        val = -val
                    elif t == INFLOW or t == MOVING:
                        val = 2.0 * self.inflow_vel[f][a] - val
                    elif t == OPEN and self.ambient[f] != 0:
                        if self._enters(a, b, I[b], J):
                            val = 0.0
                F[G] = val

    @ti.func
    def _enters(self, a: ti.template(), b: ti.template(), side, J):
        """Whether air crosses the open face (b, side) inwards beside face J of velocity component a (b != a):
        the normal velocity on that face, averaged over the two cells either side of J along a."""
        n = ti.static(self.shape)
        K0 = J
        K0[b] = side * n[b]
        for c in ti.static(range(3)):
            if ti.static(c != b):
                K0[c] = ti.min(ti.max(J[c], 0), n[c] - 1)
        K1 = K0
        K0[a] = ti.min(ti.max(J[a] - 1, 0), n[a] - 1)
        u = 0.5 * (self.vel[b][K0] + self.vel[b][K1])
        return (side == 0 and u > 0.0) or (side == 1 and u < 0.0)

    @ti.func
    def ghost_cells(self, S: ti.template(), q: ti.template()):
        """Fill the ghost layer of scalar q: 0 beyond open faces, the inflow's value beyond inflow faces, else zero gradient."""
        for b in ti.static(range(3)):
            rng = ti.static(_ghost_ranges(self.shape, b))
            for I in ti.grouped(ti.ndrange(rng[0], rng[1], rng[2])):
                G, J = _ghost_and_inner(I, b, ti.static(self.shape))
                f = 2 * b + I[b]
                t = self.btype[f]
                val = S[J]
                if t == OPEN:
                    val = 0.0
                elif t == INFLOW:
                    val = self.inflow_sc[f][q]
                S[G] = val

    # ------------------------------------------------------------------ bodies

    def mark_cells(self) -> None:
        """Body cells (``mark_solids``), then sealed pockets out of the pressure solve (``fluid``).

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
        self.fluid.from_numpy(keep[labels].astype(np.int32))

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
            self.fluid[I] = ti.select(b < 0, 1, 0)

    @ti.kernel
    def enforce(self):
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
                    bl = self.body[I - unit(a)]
                if hi_in:
                    bh = self.body[I]
                if bl >= 0 or bh >= 0:
                    b = ti.select(bl >= 0, bl, bh)
                    F[I] = self.colliders.velocity(b, self.face_pos(a, I))[a]
                else:
                    f = -1
                    if not lo_in:
                        f = 2 * a
                    elif not hi_in:
                        f = 2 * a + 1
                    if f >= 0:
                        t = self.btype[f]
                        if t == WALL or t == NO_SLIP or t == MOVING:
                            F[I] = 0.0
                        elif t == INFLOW:
                            F[I] = self.inflow_vel[f][a]

    @ti.kernel
    def impulses(self, phi: ti.template(), scale: ti.f32):
        """Pressure on fluid-body faces pushes the body: J = air_density p_kin dx^2 dt = scale phi along the face normal into it."""
        n = ti.static(self.shape)
        for a in ti.static(range(3)):
            for I in ti.grouped(ti.ndrange(*self.face_shapes[a])):
                if 0 < I[a] < n[a]:
                    lo = I - unit(a)
                    bl = self.body[lo]
                    bh = self.body[I]
                    if bl < 0 and bh >= 0:  # fluid below, body above: pushes +a
                        self.colliders.add_impulse(bh, self.face_pos(a, I), scale * phi[lo] * unit(a))
                    elif bl >= 0 and bh < 0:
                        self.colliders.add_impulse(bl, self.face_pos(a, I), -scale * phi[I] * unit(a))

    @ti.kernel
    def extrapolate_scalars(self):
        """Solid cells next to fluid take the mean of their fluid neighbours (so interpolation near bodies does not see 0)."""
        n = ti.static(self.shape)
        for I in ti.grouped(self.body):
            if self.body[I] >= 0:
                cnt = 0
                acc = ti.Vector([0.0, 0.0, 0.0])
                for a in ti.static(range(3)):
                    for side in ti.static(range(2)):
                        J = I + unit(a) * (2 * side - 1)
                        if 0 <= J[a] < n[a]:
                            if self.body[J] < 0:
                                cnt += 1
                                acc += ti.Vector([self.sc[0][J], self.sc[1][J], self.sc[2][J]])
                if cnt > 0:
                    for q in ti.static(range(3)):
                        self.sc[q][I] = acc[q] / cnt

    @ti.kernel
    def clear_solid_scalars(self):
        for I in ti.grouped(self.body):
            if self.body[I] >= 0:
                for q in ti.static(range(3)):
                    self.sc[q][I] = 0.0
                self.flame[I] = 0.0
