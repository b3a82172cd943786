"""The burn map's points on a flammable object's surface: its mesh, subdivided evenly.

A flammable object burns point by point (``hybrid.fields.burning``). The points are
the vertices of the object's own mesh (``geometry.build_mesh``) after midpoint
subdivision until no edge is longer than the flammable block's ``spacing`` (at most
``MAX_FACES`` triangles; a box is gridded face by face instead, ``box_grid``), so the burn map lies exactly on the surface the renderer
draws, and the renderer can draw the char colour per vertex of the same mesh.

Meshes split vertices where normals or texture coordinates jump (a box's corners, a
sphere's seam); the burn map merges vertices at the same position into one *node*, so
fire crosses a box's edges. Per node: its position and outward normal (area-weighted
mean of the faces around it) in the object frame, and the area it stands for (a third
of each triangle it is a corner of: the areas sum to the mesh's area). Edges join
every two nodes closer than ``REACH`` x the spacing, weighted by their distance; the
flame front runs along them (``hybrid.fields.burning``). With neighbours in many
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

    if getattr(shape, "type", None) == "box":
        mesh = box_grid(np.asarray(shape.size, dtype=np.float64), spacing)
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


def surface_of(mesh: "trimesh.Trimesh", spacing: float) -> BurnSurface:
    """Nodes, normals, areas and edges of an (already subdivided) mesh; edges up to
    ``REACH`` x its median triangle edge long (`spacing` for a mesh without faces)."""
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
    edges = np.sort(edges, axis=1)
    edges = edges[np.lexsort((edges[:, 1], edges[:, 0]))]
    length = np.linalg.norm(position[edges[:, 1]] - position[edges[:, 0]], axis=1)
    return BurnSurface(mesh=mesh, node=node, position=position, normal=normal, area=area, edges=edges, length=length)
