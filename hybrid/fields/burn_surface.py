"""The burn map's points on a flammable object's surface: its mesh, subdivided evenly.

A flammable object burns point by point (``hybrid.fields.burning``). The points are
the vertices of the object's own mesh (``geometry.build_mesh``) after midpoint
subdivision until no edge is longer than the flammable block's ``spacing`` (at most
``MAX_FACES`` triangles), so the burn map lies exactly on the surface the renderer
draws, and the renderer can draw the char colour per vertex of the same mesh. Boxes and
cylinders are gridded instead (``box_grid``, ``cylinder_grid``): uniform subdivision
splits a long face's short edges as often as its long ones, which on a stick or a log
leaves slivers a hundredth of the spacing wide and a hundred thousand points.

Meshes split vertices where normals or texture coordinates jump (a box's corners, a
sphere's seam); the burn map merges vertices at the same position into one *node*, so
fire crosses a box's edges. Per node: its position and outward normal (area-weighted
mean of the faces around it) in the object frame, and the area it stands for (a third
of each triangle it is a corner of: the areas sum to the mesh's area). Edges join
every two nodes closer than ``REACH`` x the mesh's median edge, and every two nodes
that share a mesh edge (so the map is connected wherever the surface is, however
uneven its triangles), weighted by their distance; the flame front runs along them
(``hybrid.fields.burning``). With neighbours in many
directions, shortest paths come within a few per cent of straight lines (only the
mesh's own edges would let a front on a box face run up to sqrt(2) too slowly across
its diagonals); straight lines through the object (across a box's edge, or a folded
sheet) are a little shorter than paths along the surface, by at most REACH spacings.

Plain NumPy and trimesh, no Taichi: the renderer builds the same surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import trimesh

MAX_FACES = 200_000  # subdivision stops before a mesh passes this many triangles
MERGE_TOLERANCE = 1e-7  # metres: vertices closer than this are one node
REACH = 2.5  # spacings: nodes this close are joined by an edge


@dataclass(frozen=True)
class BurnSurface:
    """See the module docstring. ``mesh``: the subdivided mesh (object frame, with ``visual.uv`` where
    the shape has it, and vertex normals); ``node``: (V,) the node of every mesh vertex."""

    mesh: "trimesh.Trimesh"
    node: np.ndarray  # (V,) int64
    position: np.ndarray  # (N, 3) float64, object frame
    normal: np.ndarray  # (N, 3) float64, unit
    area: np.ndarray  # (N,) float64, m^2
    edges: np.ndarray  # (E, 2) int64, node pairs (a < b)
    length: np.ndarray  # (E,) float64, metres

    @property
    def count(self) -> int:
        return int(len(self.position))


def subdivide(mesh: "trimesh.Trimesh", spacing: float, max_faces: int = MAX_FACES) -> "trimesh.Trimesh":
    """`mesh` with every triangle split into four (edge midpoints) until no edge exceeds `spacing`
    or another split would pass `max_faces`; uv and vertex normals interpolated linearly."""
    import trimesh
    from trimesh import remesh

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    uv = getattr(mesh.visual, "uv", None)
    attributes = {"normal": np.asarray(mesh.vertex_normals, dtype=np.float64)}
    if uv is not None:
        attributes["uv"] = np.asarray(uv, dtype=np.float64)
    while len(faces) * 4 <= max_faces:
        tri = vertices[faces]
        longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max()
        if longest <= spacing:
            break
        vertices, faces, attributes = remesh.subdivide(vertices, faces, vertex_attributes=attributes)
    normals = attributes["normal"]
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    out = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_normals=normals, process=False)
    if "uv" in attributes:
        out.visual = trimesh.visual.TextureVisuals(uv=attributes["uv"])
    return out


def burn_surface(shape, seed: int = 0, spacing: float = 0.01) -> BurnSurface:
    """The burn map of a shape (an object's ``shape`` spec): see the module docstring."""
    from hybrid.geometry import build_mesh

    kind = getattr(shape, "type", None)
    if kind == "box":
        mesh = box_grid(np.asarray(shape.size, dtype=np.float64), spacing)
    elif kind == "cylinder":
        mesh = cylinder_grid(float(shape.radius), float(shape.length), spacing)
    else:
        mesh = subdivide(build_mesh(shape, seed), spacing)
    return surface_of(mesh, spacing)


def box_grid(size: np.ndarray, spacing: float) -> "trimesh.Trimesh":
    """A box's faces as grids of ceil(side / `spacing`) cells a side: the surface, normals and
    per-face 0..1 uv of ``BoxShape.mesh``, without the sliver triangles that uniform
    subdivision leaves on thin boxes (a sheet's edges, a stick's long faces). Two faces
    meeting at an edge cut it into the same number of cells, so their vertices meet."""
    import trimesh

    half = size / 2.0
    verts, normals, uvs, faces = [], [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = np.zeros(3)
            n[axis] = sign
            t1 = np.eye(3)[(axis + 1) % 3]  # as BoxShape.mesh: t1 x t2 = n
            t2 = np.cross(n, t1)
            k1 = max(1, int(np.ceil(2.0 * abs(t1 @ half) / spacing - 1e-9)))
            k2 = max(1, int(np.ceil(2.0 * abs(t2 @ half) / spacing - 1e-9)))
            du, dv = np.meshgrid(np.linspace(0.0, 1.0, k1 + 1), np.linspace(0.0, 1.0, k2 + 1), indexing="ij")
            du, dv = du.ravel(), dv.ravel()
            p = n * half + (2 * du - 1)[:, None] * (t1 * half) + (2 * dv - 1)[:, None] * (t2 * half)
            base = sum(len(v) for v in verts)
            idx = base + np.arange((k1 + 1) * (k2 + 1)).reshape(k1 + 1, k2 + 1)
            a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
            faces.append(np.stack([a, b, c], 1))
            faces.append(np.stack([a, c, d], 1))
            verts.append(p)
            normals.append(np.tile(n, (len(p), 1)))
            uvs.append(np.stack([du, dv], 1))
    mesh = trimesh.Trimesh(
        np.concatenate(verts), np.concatenate(faces), vertex_normals=np.concatenate(normals), process=False
    )
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.concatenate(uvs))
    return mesh


def cylinder_grid(radius: float, length: float, spacing: float) -> "trimesh.Trimesh":
    """A cylinder along z (``CylinderShape.mesh``'s surface, normals and uv: the side's u around, v
    along; the caps' planar uv) as a grid: max(CYLINDER_SEGMENTS, 2 pi r / `spacing`) points around,
    rings at most `spacing` apart along the side and across the caps. Every ring has the same
    points around, so the side's rims are the caps' outer rings and their nodes merge."""
    import trimesh

    from hybrid.geometry import CYLINDER_SEGMENTS

    n = max(CYLINDER_SEGMENTS, int(np.ceil(2.0 * np.pi * radius / spacing - 1e-9)))
    k = max(1, int(np.ceil(length / spacing - 1e-9)))
    m = max(1, int(np.ceil(radius / spacing - 1e-9)))
    phi = np.linspace(0.0, 2.0 * np.pi, n + 1)  # the seam is doubled, as in the shape's mesh (u = 0 and 1)
    c, s = np.cos(phi), np.sin(phi)
    verts, normals, uvs, faces = [], [], [], []

    def grid(points, norms, uv, rows, cols):
        base = sum(len(v) for v in verts)
        idx = base + np.arange(rows * cols).reshape(rows, cols)
        a, b, cc, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
        verts.append(points)
        normals.append(norms)
        uvs.append(uv)
        return a, b, cc, d

    # Side: rows along z from -L/2, columns around; outward normals.
    z = np.linspace(-length / 2.0, length / 2.0, k + 1)
    zz, cc_, ss = np.repeat(z[:, None], n + 1, 1), np.tile(c, (k + 1, 1)), np.tile(s, (k + 1, 1))
    side = np.stack([radius * cc_, radius * ss, zz], -1).reshape(-1, 3)
    side_n = np.stack([cc_, ss, np.zeros_like(cc_)], -1).reshape(-1, 3)
    side_uv = np.stack([np.tile(np.arange(n + 1) / n, (k + 1, 1)), (zz + length / 2.0) / length], -1).reshape(-1, 2)
    a, b, cc, d = grid(side, side_n, side_uv, k + 1, n + 1)
    faces += [np.stack([a, b, cc], 1), np.stack([a, cc, d], 1)]
    # Caps: rings from the rim inwards (the centre is one point repeated around), flat normals.
    rho = np.linspace(radius, 0.0, m + 1)
    for height, nz in ((length / 2.0, 1.0), (-length / 2.0, -1.0)):
        rr, cr, sr = np.repeat(rho[:, None], n + 1, 1), np.tile(c, (m + 1, 1)), np.tile(s, (m + 1, 1))
        cap = np.stack([rr * cr, rr * sr, np.full_like(rr, height)], -1).reshape(-1, 3)
        cap_n = np.tile([0.0, 0.0, nz], (len(cap), 1))
        cap_uv = np.stack([0.5 + 0.5 * (rr / radius) * cr, 0.5 + 0.5 * (rr / radius) * sr], -1).reshape(-1, 2)
        a, b, cc, d = grid(cap, cap_n, cap_uv, m + 1, n + 1)
        inner = np.repeat(np.arange(m) == m - 1, n)  # the last row of quads meets the centre: one triangle each
        tri1, tri2 = np.stack([a, b, cc], 1), np.stack([a, cc, d], 1)
        if nz < 0:  # wound so the face normal points down
            tri1, tri2 = tri1[:, ::-1], tri2[:, ::-1]
        faces += [tri1, tri2[~inner]]
    mesh = trimesh.Trimesh(
        np.concatenate(verts), np.concatenate(faces), vertex_normals=np.concatenate(normals), process=False
    )
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.concatenate(uvs))
    return mesh


def surface_of(mesh: "trimesh.Trimesh", spacing: float) -> BurnSurface:
    """Nodes, normals, areas and edges of an (already subdivided) mesh; edges join nodes up to
    ``REACH`` x its median triangle edge apart (`spacing` for a mesh without faces) and the
    mesh's own edges."""
    from scipy.spatial import cKDTree

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    keys = np.round(vertices / MERGE_TOLERANCE).astype(np.int64)
    _, first, node = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    node = node.reshape(-1)
    n = len(first)
    position = vertices[first]
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # 2 x area x unit normal
    face_area = 0.5 * np.linalg.norm(cross, axis=1)
    fn = node[faces]
    area = np.zeros(n)
    normal = np.zeros((n, 3))
    for c in range(3):
        np.add.at(area, fn[:, c], face_area / 3.0)
        np.add.at(normal, fn[:, c], cross)
    length_n = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.where(length_n > 0, normal / np.maximum(length_n, 1e-300), 0.0)
    # The typical edge: uniform subdivision leaves a face's points closer than `spacing`
    # when its longest edge needed one split more than its shortest.
    typical = float(np.median(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2))) if len(faces) else spacing
    reach = REACH * typical
    edges = cKDTree(position).query_pairs(reach, output_type="ndarray").astype(np.int64)
    own = np.concatenate([fn[:, [0, 1]], fn[:, [1, 2]], fn[:, [2, 0]]]) if len(faces) else np.zeros((0, 2), np.int64)
    own = own[own[:, 0] != own[:, 1]]  # a triangle with two corners on one node (a cap's centre) has no edge there
    edges = np.unique(np.sort(np.concatenate([edges.reshape(-1, 2), own]), axis=1), axis=0)
    length = np.linalg.norm(position[edges[:, 1]] - position[edges[:, 0]], axis=1)
    return BurnSurface(mesh=mesh, node=node, position=position, normal=normal, area=area, edges=edges, length=length)
