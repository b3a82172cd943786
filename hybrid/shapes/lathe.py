"""A solid of revolution about the local z axis: a glass, a bowl, a bottle, a vase, from its (r, z) outline.

``profile`` is the outline in the half-plane r >= 0 (metres), from a point on the axis
out and round, back to a point on the axis, counter-clockwise (r to the right, z up:
outwards along the bottom, up the outside, back down the inside for a vessel); the
axis closes it. ``sections`` chords make the circle, so the solid is the polygon
swept through ``sections`` equal wedges with straight chords: exactly what is drawn.

Why a shape of its own: a vessel is concave, and the convex decomposition of its
drawn mesh (V-HACD) fills a thin-walled bowl and overlaps itself (for a wine glass,
hulls with 1.4 to 5 times the glass's volume), so it would neither rest things
inside it nor break into fragments that tile it. A lathe solid has an exact convex
partition instead: the outline is cut into convex polygons (ear clipping, then
merging neighbours while the union stays convex: Hertel-Mehlhorn), and each polygon
swept through one wedge is convex (for two points r1 u1, r2 u2 of it, with u on the
wedge's chord, the midpoint is ((r1 + r2) / 2) u' with u' on the chord). These parts
tile the drawn solid, collide as a compound when the object moves
(``collision``, each part shrunk by pybullet's margin as fragments are:
``hybrid.physics.breaking``) and are what a breakable lathe is cut from
(``convex_parts``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from hybrid.shapes.base import ShapeSpec, register_shape
from hybrid.spec.types import Float, Int, NonNegative

# Outline corners sharper than this (degrees between neighbouring segments' normals) stay sharp when drawn.
SMOOTH_ANGLE_DEG = 35.0


class LatheShape(ShapeSpec):
    type: Literal["lathe"]
    profile: tuple[tuple[NonNegative, Float], ...] = Field(
        min_length=3,
        description="(r, z) outline in metres from a point on the axis (r = 0) round to another, counter-clockwise",
    )
    sections: Int = Field(32, ge=3, le=256, description="chords around the axis")

    build_hint = "give a simple, counter-clockwise (r, z) outline that starts and ends on the axis (r = 0)"

    @field_validator("profile")
    @classmethod
    def _outline(cls, profile):
        pts = np.asarray(profile, dtype=np.float64)
        if pts[0, 0] != 0.0 or pts[-1, 0] != 0.0:
            raise ValueError("the profile must start and end on the axis (r = 0), e.g. [[0, 0], [0.05, 0], ..., [0, 0.1]]")
        if (pts[1:-1, 0] <= 0.0).any():
            raise ValueError("only the profile's first and last points may lie on the axis (r = 0)")
        if _signed_area(pts) <= 0.0:
            raise ValueError(
                "the profile goes clockwise or encloses no area; list it counter-clockwise (r right, z up): "
                "out along the bottom, up the outside, back down the inside"
            )
        if _self_intersects(pts):
            raise ValueError("the profile crosses itself; give a simple outline")
        return profile

    # ------------------------------------------------------------ geometry

    def _outline_points(self) -> np.ndarray:
        return np.asarray(self.profile, dtype=np.float64)

    def mesh(self, seed: int = 0):
        """The swept outline: each segment a band of quads (a triangle fan where it meets the axis),
        normals smooth around the axis and across outline corners gentler than ``SMOOTH_ANGLE_DEG``;
        u runs once around (0..1), v along the outline in metres."""
        import trimesh

        pts = self._outline_points()
        n = self.sections
        theta = np.linspace(0.0, 2.0 * np.pi, n + 1)
        c, s = np.cos(theta), np.sin(theta)
        seg = np.diff(pts, axis=0)
        length = np.linalg.norm(seg, axis=1)
        normal2 = np.stack([seg[:, 1], -seg[:, 0]], axis=1) / np.where(length > 0, length, 1.0)[:, None]  # outward (CCW)
        arc = np.concatenate([[0.0], np.cumsum(length)])
        cos_smooth = np.cos(np.radians(SMOOTH_ANGLE_DEG))
        verts, norms, uvs, faces = [], [], [], []
        for k in range(len(seg)):
            ends = []
            for end, vertex in ((0, k), (1, k + 1)):
                nrm = normal2[k].copy()
                other = k - 1 if end == 0 else k + 1
                if 0 <= other < len(seg) and normal2[k] @ normal2[other] >= cos_smooth:
                    nrm = normal2[k] + normal2[other]
                    nrm /= np.linalg.norm(nrm)
                ends.append((pts[vertex], nrm, arc[vertex]))
            base = len(verts)
            for (r, z), (nr, nz), v in ends:
                for j in range(n + 1):
                    verts.append((r * c[j], r * s[j], z))
                    norms.append((nr * c[j], nr * s[j], nz))
                    uvs.append((j / n, v))
            r0, r1 = ends[0][0][0], ends[1][0][0]
            for j in range(n):
                a, b, cc, d = base + j, base + j + 1, base + n + 1 + j, base + n + 1 + j + 1
                if r0 == 0.0:
                    faces.append((a, d, cc))  # fan from the axis
                elif r1 == 0.0:
                    faces.append((a, b, cc))
                else:
                    faces += [(a, b, d), (a, d, cc)]
        mesh = trimesh.Trimesh(np.array(verts), np.array(faces), vertex_normals=np.array(norms), process=False)
        mesh.visual = trimesh.visual.TextureVisuals(uv=np.array(uvs))
        return mesh

    def _solid(self):
        """The drawn mesh with coincident vertices merged: a closed solid, for volume and inertia."""
        import trimesh

        m = self.mesh()
        return trimesh.Trimesh(np.asarray(m.vertices), np.asarray(m.faces), process=True)

    def volume(self) -> float:
        return float(abs(self._solid().volume))

    def inertia(self, mesh):
        return super().inertia(self._solid())

    def convex_parts(self, seed: int = 0) -> list[np.ndarray]:
        """The exact convex partition (see the module docstring): per convex piece of the outline and per
        wedge, the (K, 3) corners in the shape frame; together they tile the drawn solid."""
        pts = self._outline_points()
        n = self.sections
        theta = np.linspace(0.0, 2.0 * np.pi, n + 1)
        parts = []
        for poly in convex_pieces(pts):
            rz = pts[poly]
            for j in range(n):
                corners = []
                for t in (theta[j], theta[j + 1]):
                    for r, z in rz:
                        if r == 0.0 and t == theta[j + 1]:
                            continue  # on the axis: the same point at both angles
                        corners.append((r * np.cos(t), r * np.sin(t), z))
                parts.append(np.asarray(corners))
        return parts

    def collision(self, client, obj, mesh):
        """Moving: a compound of the convex parts (in pybullet's inertial frame, each shrunk by the compound
        margin). Static or kinematic: the drawn triangles (``ShapeSpec.collision``)."""
        if obj.physics.body != "dynamic":
            return super().collision(client, obj, mesh)
        from hybrid.physics import mass as massmod
        from hybrid.physics.breaking import COMPOUND_MARGIN, compound_file, shrink_hull
        from hybrid.physics.shapes import decomposition_shape
        from hybrid.transforms import pose_matrix

        props = massmod.mass_properties(obj, self.mesh())
        to_inertial = np.linalg.inv(pose_matrix(props.com, props.principal_quat))
        hulls = []
        for part in self.convex_parts():
            moved = part @ to_inertial[:3, :3].T + to_inertial[:3, 3]
            shrunk = shrink_hull(moved, COMPOUND_MARGIN)
            if shrunk is not None:
                hulls.append(shrunk)
        if not hulls:
            from hybrid.physics.errors import BodyBuildError

            raise BodyBuildError(
                f"object {obj.name!r}: every convex part of this lathe is thinner than "
                f"{3 * COMPOUND_MARGIN * 1000:.0f} mm, too thin to collide; thicken its walls"
            )
        return decomposition_shape(client, compound_file(hulls))


def _signed_area(pts: np.ndarray) -> float:
    """Shoelace area of the outline closed along the axis (positive: counter-clockwise in (r, z))."""
    r, z = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.sum(r * np.roll(z, -1) - np.roll(r, -1) * z))


def _cross(o, a, b) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _segments_cross(p1, p2, q1, q2) -> bool:
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


def _self_intersects(pts: np.ndarray) -> bool:
    """Whether two non-neighbouring edges of the closed outline cross."""
    m = len(pts)
    edges = [(pts[i], pts[(i + 1) % m]) for i in range(m)]
    for i in range(m):
        for j in range(i + 2, m):
            if i == 0 and j == m - 1:
                continue  # neighbours through the closing edge
            if _segments_cross(*edges[i], *edges[j]):
                return True
    return False


def _ear_clip(pts: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles (counter-clockwise index triples) of the simple counter-clockwise polygon `pts`."""
    index = list(range(len(pts)))
    triangles = []
    scale = float(np.ptp(pts, axis=0).max()) or 1.0
    eps = 1e-12 * scale * scale
    guard = 0
    while len(index) > 3 and guard < 10 * len(pts) ** 2:
        guard += 1
        for k in range(len(index)):
            i, j, l = index[k - 1], index[k], index[(k + 1) % len(index)]
            turn = _cross(pts[i], pts[j], pts[l])
            if abs(turn) <= eps:
                index.pop(k)  # a straight corner: no area is lost
                break
            if turn < 0:
                continue  # reflex
            inside = False
            for m in index:
                if m in (i, j, l):
                    continue
                p = pts[m]
                if _cross(pts[i], pts[j], p) >= 0 and _cross(pts[j], pts[l], p) >= 0 and _cross(pts[l], pts[i], p) >= 0:
                    inside = True
                    break
            if not inside:
                triangles.append((i, j, l))
                index.pop(k)
                break
        else:
            raise ValueError("the profile could not be cut into triangles; give a simple outline")
    if len(index) == 3 and _cross(*(pts[i] for i in index)) > eps:
        triangles.append(tuple(index))
    return triangles


def _convex(poly: list[int], pts: np.ndarray) -> bool:
    m = len(poly)
    scale = float(np.ptp(pts, axis=0).max()) or 1.0
    return all(_cross(pts[poly[k - 1]], pts[poly[k]], pts[poly[(k + 1) % m]]) >= -1e-12 * scale * scale for k in range(m))


def convex_pieces(pts: np.ndarray) -> list[list[int]]:
    """The outline (closed along the axis) cut into convex polygons: ear clipping, then neighbours merged
    across their shared edge while the union stays convex (Hertel-Mehlhorn: at most 4x the fewest pieces)."""
    polys = [list(t) for t in _ear_clip(pts)]
    merged = True
    while merged:
        merged = False
        for a in range(len(polys)):
            for b in range(a + 1, len(polys)):
                P, Q = polys[a], polys[b]
                shared = None
                for k in range(len(P)):
                    u, v = P[k], P[(k + 1) % len(P)]
                    for q in range(len(Q)):
                        if Q[q] == v and Q[(q + 1) % len(Q)] == u:
                            shared = (k, q)
                            break
                    if shared:
                        break
                if shared is None:
                    continue
                k, q = shared
                # P ... u (k) v (k+1) ... ; Q ... v (q) u (q+1) ...: walk P from v round to u, then Q's rest.
                p_rot = P[k + 1 :] + P[: k + 1]  # starts at v, ends at u
                q_rot = Q[q + 1 :] + Q[: q + 1]  # starts at u, ends at v
                union = p_rot + q_rot[1:-1]
                if _convex(union, pts):
                    polys[a] = union
                    polys.pop(b)
                    merged = True
                    break
            if merged:
                break
    return polys


register_shape(LatheShape)
