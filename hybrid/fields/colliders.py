"""Rigid bodies as moving solid boundaries for the field solvers, and the forces they feel.

Each scene object becomes a signed distance function in its shape frame
(``ColliderShape``, plain NumPy, built once from the spec), and the ``Colliders``
Taichi container holds every object's current pose and velocity. Solver kernels call
its ``ti.func`` methods:

- ``sdf(b, p)``: signed distance (m) of world point `p` to body `b`, negative inside;
- ``normal(b, p)``: unit outward normal there (central differences of the SDF);
- ``velocity(b, p)``: the body's velocity at `p` (rigid motion, m/s);
- ``nearest(p)``: (body, distance) of the closest body, or (-1, big) when none is near;
- ``add_impulse(b, p, J)``: the fluid pushed body `b` with impulse `J` (N s) at `p`.

After a solver step the owner reads ``take_impulses()``: the summed linear impulse
and the angular impulse about each body's centre of mass, and applies them to
pybullet as forces over the step.

Order-free sums. Many loop iterations add to one body's impulse at once, so the
adds are atomic, and float atomics give sums whose last bits depend on the order in
which threads reach them. The accumulators are therefore 64-bit integers in units
of ``IMPULSE_QUANTUM`` (2^-40 N s): each contribution is rounded to a whole number
of quanta (in float64), and integer addition is associative, so the sum has the same
bits in any order: run to run, at any thread count, and on a GPU. The rounding costs
at most half a quantum (4.5e-13 N s) per contribution, far below the float32
rounding of the sums it replaces (6e-8 of the running total). A contribution is
clamped to +-``IMPULSE_LIMIT`` (2^20 N s: a 100-tonne body stopped from 10 m/s in
one substep); an accumulator holds 2^23 N s before it wraps. Vulkan does not offer
64-bit atomics on every device, so there the accumulators stay float32 atomics and
the bits vary.

Each shape gives its own description (``collider`` of its model in ``hybrid.shapes``).
Exact SDFs: sphere, box, capsule, cylinder, plane (solid below z = 0 of its frame).
A mesh, and any shape without an SDF of its own, is represented by its convex hull
(``hull_collider``: max of the hull's face-plane distances: exact inside and on the
surface, a lower bound outside near edges), a heightfield by
the vertical distance to its bilinear surface (exact on flat ground, conservative on
slopes). Containers for liquids are best built from boxes, which are exact.
"""

# No `from __future__ import annotations`: Taichi reads kernel annotations as objects.
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from hybrid.fields.backend import _import_taichi
from hybrid.transforms import quats_to_matrices

if TYPE_CHECKING:
    from hybrid.scene.spec import ObjectSpec

ti = _import_taichi()

SPHERE, BOX, CAPSULE, CYLINDER, HALFSPACE, HULL, HEIGHTFIELD = range(7)
FAR = 1.0e6  # "no body near": larger than any domain
IMPULSE_QUANTUM = 2.0**-40  # N s (N m s for angular impulses): one unit of the integer accumulators
IMPULSE_LIMIT = 2.0**20  # largest contribution kept (N s): 2^60 quanta, an eighth of what an i64 holds


@dataclass(frozen=True)
class ColliderShape:
    """One object's SDF description in its shape frame.

    kind: one of the module constants; params (4,): sphere (r), box (hx, hy, hz),
    capsule and cylinder (r, half length along z); planes (P, 4): hull face planes
    (unit n, d) with n . x <= d inside; heights (ny, nx) with extent (sx, sy) centred
    on the origin for heightfields; bound_radius: a sphere around the shape frame's
    origin containing the solid (inf for planes), for culling.
    """

    kind: int
    params: np.ndarray = field(default_factory=lambda: np.zeros(4))
    planes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    heights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    extent: tuple[float, float] = (0.0, 0.0)
    bound_radius: float = float("inf")


def _hull_planes(vertices: np.ndarray, max_planes: Optional[int] = None) -> np.ndarray:
    from scipy.spatial import ConvexHull

    hull = ConvexHull(vertices)
    eq = hull.equations  # n . x + c <= 0 inside
    planes = np.concatenate([eq[:, :3], -eq[:, 3:]], axis=1)
    # Coplanar triangles give the same plane many times.
    _, keep, which = np.unique(np.round(planes, 6), axis=0, return_index=True, return_inverse=True)
    if max_planes is not None and len(keep) > max_planes:
        # Too many faces for the room left: keep the largest. Dropping a face plane only
        # enlarges the solid a little where that face was (never opens a hole).
        tri = vertices[hull.simplices]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        per_plane = np.bincount(which.ravel(), weights=area, minlength=len(keep))
        keep = keep[np.sort(np.argsort(-per_plane, kind="stable")[:max_planes])]
    return planes[np.sort(keep)]


def hull_collider(vertices: np.ndarray, max_planes: Optional[int] = None) -> ColliderShape:
    """A convex solid given by its points (N, 3) in the shape frame: the SDF of their convex hull (with at
    most `max_planes` face planes, the largest, when given)."""
    planes = _hull_planes(vertices, max_planes)
    return ColliderShape(HULL, planes=planes, bound_radius=float(np.linalg.norm(vertices, axis=1).max()))


def collider_shape(obj: "ObjectSpec", seed: int = 0) -> ColliderShape:
    """The SDF description of a scene object (see the module docstring for what is exact);
    each shape makes its own (``collider`` of its model in ``hybrid.shapes``)."""
    return obj.shape.collider(obj, seed)


@ti.func
def _quanta(v):
    """`v` (N s) as a whole number of IMPULSE_QUANTUM, rounded to nearest in float64, clamped to +-IMPULSE_LIMIT."""
    x = ti.math.clamp(ti.cast(v, ti.f64), -IMPULSE_LIMIT, IMPULSE_LIMIT) * (1.0 / IMPULSE_QUANTUM)
    return ti.cast(ti.round(x), ti.i64)


@ti.data_oriented
class Colliders:
    """Every body's SDF, pose and velocity on the Taichi side, plus the impulses fluids put on them.

    `shapes` in scene order (body b is object b); `receives[b]` says whether body b
    takes forces from the fluids (dynamic bodies under two-way coupling).
    """

    def __init__(self, shapes: Sequence[Optional[ColliderShape]], receives: Sequence[bool], spare_planes: int = 0):
        """`shapes[b]` None: body b does not exist yet (a fragment slot, ``hybrid.roster``); it is no
        boundary until ``set_shape`` gives it one. `spare_planes`: room for the face planes of the hull
        shapes given later."""
        self.count = len(shapes)
        n = max(1, self.count)
        self.shapes = list(shapes)  # None where a body does not exist (now)
        self.receives_np = np.asarray(list(receives) + [False] * (n - self.count), dtype=np.int32)
        self.kind = ti.field(ti.i32, n)
        self.params = ti.Vector.field(4, ti.f32, n)
        self.bound = ti.field(ti.f32, n)
        self.rotation = ti.Matrix.field(3, 3, ti.f32, n)  # shape frame -> world
        self.origin = ti.Vector.field(3, ti.f32, n)  # shape frame origin, world
        self.lin_vel = ti.Vector.field(3, ti.f32, n)  # velocity of the origin
        self.ang_vel = ti.Vector.field(3, ti.f32, n)
        self.com = ti.Vector.field(3, ti.f32, n)  # centre of mass, world
        self.receives = ti.field(ti.i32, n)
        # Order-free integer sums (module docstring); float32 atomics where 64-bit ones are missing.
        self.fixed_point = ti.lang.impl.current_cfg().arch != ti.vulkan
        acc = ti.i64 if self.fixed_point else ti.f32
        self.impulse = ti.Vector.field(3, acc, n)
        self.angular_impulse = ti.Vector.field(3, acc, n)
        planes = [s.planes for s in shapes if s is not None and s.kind == HULL]
        all_planes = np.concatenate(planes) if planes else np.zeros((1, 4))
        self._planes_used = len(all_planes)
        self._planes_capacity = len(all_planes) + int(spare_planes)
        all_planes = np.concatenate([all_planes, np.zeros((int(spare_planes), 4))])
        self.planes = ti.Vector.field(4, ti.f32, len(all_planes))
        self.plane_range = ti.Vector.field(2, ti.i32, n)
        hfs = [s.heights.ravel() for s in shapes if s is not None and s.kind == HEIGHTFIELD]
        all_heights = np.concatenate(hfs) if hfs else np.zeros(1)
        self.heights = ti.field(ti.f32, len(all_heights))
        self.hf_start = ti.field(ti.i32, n)
        self.hf_dims = ti.Vector.field(2, ti.i32, n)  # (nx, ny)
        self.hf_extent = ti.Vector.field(2, ti.f32, n)

        kind = np.full(n, -1, np.int32)
        params = np.zeros((n, 4), np.float32)
        bound = np.full(n, FAR, np.float32)
        plane_range = np.zeros((n, 2), np.int32)
        hf_start = np.zeros(n, np.int32)
        hf_dims = np.ones((n, 2), np.int32)
        hf_extent = np.ones((n, 2), np.float32)
        p0 = h0 = 0
        for b, s in enumerate(shapes):
            if s is None:
                bound[b] = -FAR  # culled by every query: (distance to origin) - bound is never small
                continue
            kind[b] = s.kind
            params[b] = s.params
            bound[b] = min(FAR, s.bound_radius)
            if s.kind == HULL:
                plane_range[b] = (p0, p0 + len(s.planes))
                p0 += len(s.planes)
            if s.kind == HEIGHTFIELD:
                ny, nx = s.heights.shape
                hf_start[b], hf_dims[b], hf_extent[b] = h0, (nx, ny), s.extent
                h0 += s.heights.size
        self.kind.from_numpy(kind)
        self.params.from_numpy(params)
        self.bound.from_numpy(bound)
        self.receives.from_numpy(self.receives_np)
        self.planes.from_numpy(all_planes.astype(np.float32))
        self.plane_range.from_numpy(plane_range)
        self.heights.from_numpy(all_heights.astype(np.float32))
        self.hf_start.from_numpy(hf_start)
        self.hf_dims.from_numpy(hf_dims)
        self.hf_extent.from_numpy(hf_extent)
        eye = np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy()
        self.rotation.from_numpy(eye)

    # ------------------------------------------------------------ host side

    def set_shape(self, b: int, shape: Optional[ColliderShape], receives: bool) -> None:
        """Make body b `shape` (a sphere, box, capsule, cylinder or hull), or no boundary at all (None):
        a breakable object leaving the world, its fragments entering it."""
        self.shapes[b] = shape
        if shape is None:
            self.kind[b] = -1
            self.bound[b] = -FAR
            self.receives[b] = 0
            self.receives_np[b] = 0
            return
        if shape.kind == HEIGHTFIELD:
            raise ValueError("a heightfield cannot be added to the colliders after they are built")
        if shape.kind == HULL:
            start = self._planes_used
            end = start + len(shape.planes)
            if end > self._planes_capacity:
                raise ValueError(
                    f"no room for {len(shape.planes)} more hull planes ({self._planes_capacity - start} left)"
                )
            for i, plane in enumerate(np.asarray(shape.planes, np.float32)):
                self.planes[start + i] = plane.tolist()
            self.plane_range[b] = (start, end)
            self._planes_used = end
        self.params[b] = np.asarray(shape.params, np.float32).tolist()
        self.bound[b] = min(FAR, shape.bound_radius)
        self.receives[b] = int(receives)
        self.receives_np[b] = int(receives)
        self.kind[b] = shape.kind

    def set_state(
        self,
        position: np.ndarray,
        quaternion: np.ndarray,
        linear_velocity: np.ndarray,
        angular_velocity: np.ndarray,
        com: np.ndarray,
    ) -> None:
        """Every body's shape-frame pose, origin velocity, angular velocity and world COM, (N, ...) arrays."""
        if self.count == 0:
            return
        self.origin.from_numpy(np.asarray(position, np.float32))
        self.rotation.from_numpy(quats_to_matrices(np.asarray(quaternion, np.float64)).astype(np.float32))
        self.lin_vel.from_numpy(np.asarray(linear_velocity, np.float32))
        self.ang_vel.from_numpy(np.asarray(angular_velocity, np.float32))
        self.com.from_numpy(np.asarray(com, np.float32))

    def take_impulses(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) linear impulse (N s) and (N, 3) angular impulse about the COM (N m s) since the last call; resets them."""
        scale = IMPULSE_QUANTUM if self.fixed_point else 1.0
        lin = self.impulse.to_numpy()[: self.count].astype(np.float64) * scale
        ang = self.angular_impulse.to_numpy()[: self.count].astype(np.float64) * scale
        self.impulse.fill(0)
        self.angular_impulse.fill(0)
        return lin, ang

    @ti.kernel
    def advance(self, dt: ti.f32):
        """Move every body along its current velocity for `dt` seconds (between two pybullet states)."""
        for b in range(self.count):
            self.origin[b] += self.lin_vel[b] * dt
            self.com[b] += (self.lin_vel[b] + self.ang_vel[b].cross(self.com[b] - self.origin[b])) * dt
            w = self.ang_vel[b]
            angle = w.norm() * dt
            if angle > 1e-12:
                k = w.normalized()
                K = ti.Matrix([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
                R = ti.Matrix.identity(ti.f32, 3) + ti.sin(angle) * K + (1.0 - ti.cos(angle)) * (K @ K)
                self.rotation[b] = R @ self.rotation[b]

    # ------------------------------------------------------------ kernel side

    @ti.func
    def local_sdf(self, b, q):
        kind = self.kind[b]
        prm = self.params[b]
        d = FAR
        if kind == SPHERE:
            d = q.norm() - prm[0]
        elif kind == BOX:
            e = ti.abs(q) - ti.Vector([prm[0], prm[1], prm[2]])
            d = ti.max(e, 0.0).norm() + ti.min(ti.max(e[0], ti.max(e[1], e[2])), 0.0)
        elif kind == CAPSULE:
            z = ti.min(ti.max(q[2], -prm[1]), prm[1])
            d = (q - ti.Vector([0.0, 0.0, z])).norm() - prm[0]
        elif kind == CYLINDER:
            dr = ti.Vector([q.xy.norm() - prm[0], ti.abs(q[2]) - prm[1]])
            d = ti.min(ti.max(dr[0], dr[1]), 0.0) + ti.max(dr, 0.0).norm()
        elif kind == HALFSPACE:
            d = q[2]
        elif kind == HULL:
            r = self.plane_range[b]
            d = -FAR
            for i in range(r[0], r[1]):
                pl = self.planes[i]
                d = ti.max(d, pl[0] * q[0] + pl[1] * q[1] + pl[2] * q[2] - pl[3])
        elif kind == HEIGHTFIELD:
            ext = self.hf_extent[b]
            dims = self.hf_dims[b]
            u = (q[0] / ext[0] + 0.5) * (dims[0] - 1)
            v = (q[1] / ext[1] + 0.5) * (dims[1] - 1)
            if 0.0 <= u <= dims[0] - 1 and 0.0 <= v <= dims[1] - 1:
                i0 = ti.min(ti.cast(ti.floor(u), ti.i32), dims[0] - 2)
                j0 = ti.min(ti.cast(ti.floor(v), ti.i32), dims[1] - 2)
                fu, fv = u - i0, v - j0
                base = self.hf_start[b]
                h00 = self.heights[base + j0 * dims[0] + i0]
                h10 = self.heights[base + j0 * dims[0] + i0 + 1]
                h01 = self.heights[base + (j0 + 1) * dims[0] + i0]
                h11 = self.heights[base + (j0 + 1) * dims[0] + i0 + 1]
                h = (h00 * (1 - fu) + h10 * fu) * (1 - fv) + (h01 * (1 - fu) + h11 * fu) * fv
                d = q[2] - h
        return d

    @ti.func
    def sdf(self, b, p):
        """Signed distance (m) from world point p to body b; negative inside."""
        q = self.rotation[b].transpose() @ (p - self.origin[b])
        return self.local_sdf(b, q)

    @ti.func
    def normal(self, b, p):
        """Outward unit normal of body b's surface nearest p (SDF gradient)."""
        eps = 1e-3
        g = ti.Vector([0.0, 0.0, 0.0])
        for a in ti.static(range(3)):
            e = ti.Vector([0.0, 0.0, 0.0])
            e[a] = eps
            g[a] = self.sdf(b, p + e) - self.sdf(b, p - e)
        n = g
        length = g.norm()
        if length > 1e-12:
            n = g / length
        else:
            n = ti.Vector([0.0, 0.0, 1.0])
        return n

    @ti.func
    def velocity(self, b, p):
        """Velocity (m/s) of the material point of body b at world point p."""
        return self.lin_vel[b] + self.ang_vel[b].cross(p - self.origin[b])

    @ti.func
    def nearest(self, p, band):
        """(body, signed distance) of the body with the smallest SDF at p within `band` metres; (-1, FAR) if none."""
        best = -1
        best_d = FAR
        for b in range(self.count):
            # Cull by the bounding sphere before evaluating the SDF.
            if (p - self.origin[b]).norm() - self.bound[b] < band:
                d = self.sdf(b, p)
                if d < band and d < best_d:
                    best, best_d = b, d
        return best, best_d

    @ti.func
    def add_impulse(self, b, p, J):
        """The fluid gave body b impulse J (N s) at world point p (ignored for bodies that take no forces)."""
        if self.receives[b] != 0:
            L = (p - self.com[b]).cross(J)
            if ti.static(self.fixed_point):
                self.impulse[b] += _quanta(J)
                self.angular_impulse[b] += _quanta(L)
            else:
                self.impulse[b] += J
                self.angular_impulse[b] += L
