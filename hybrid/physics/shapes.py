"""pybullet collision shapes for scene shapes, in the object's own frame.

Each shape makes its own (``collision`` of its model in ``hybrid.shapes``), from the
helpers here. Primitives use Bullet's analytic shapes with the spec's dimensions (pybullet's
cylinder and capsule run along local z like ours, and a capsule's ``height`` is the
straight part, our ``length``). Everything built from triangles takes exactly the
vertices of ``geometry.build_mesh`` so what collides is what the renderer draws:

- heightfields, static and kinematic meshes: a concave triangle mesh (Bullet's BVH
  mesh; moving it by hand is fine, only its mass must be 0). We do not use
  ``GEOM_HEIGHTFIELD``: it re-centres the grid at (min + max) / 2 height and picks
  its own triangle diagonals, so its surface would differ from the drawn one.
- dynamic meshes: the convex hull when the mesh is convex, else a compound of convex
  parts from ``decomposition.decompose`` (see ``convex_decomposition``), because
  Bullet collides a moving mass only as convex pieces.

Size limits. pybullet passes vertices and indices given in Python through a fixed
command buffer: at most ``MAX_COMMAND_VERTICES`` vertices and ``MAX_COMMAND_INDICES``
triangle indices (a 297 x 297 heightfield is already too many, and pybullet then
fails with a bare SystemError). Larger triangle meshes go through a binary STL file
instead (float32 coordinates, as the rasteriser draws them), cached by content like
decompositions; pybullet caches meshes by file name, so the name is the content's
hash. A convex hull with more vertices than the buffer takes (a finely tessellated
ball) is reduced to its extreme points in ``HULL_DIRECTIONS`` directions: inscribed
in the true hull, short of it by about 0.1 % of a ball's radius (and cheaper for
Bullet's collision queries, which visit every vertex).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
from hybrid.physics.pybullet_quiet import pybullet as p
import trimesh

from hybrid.physics.errors import BodyBuildError

if TYPE_CHECKING:
    from hybrid.scene.spec import ObjectSpec


@dataclass(frozen=True)
class CollisionShape:
    """A pybullet collision shape id plus how it was made (``convex_parts``: hulls in it, 0 for analytic shapes)."""

    shape_id: int
    convex_parts: int = 0
    source: str = "primitive"  # primitive | plane | concave-mesh | convex-hull | decomposition


def primitive_shape(client: int, geom: str, source: str = "primitive", **params) -> CollisionShape:
    """One of Bullet's analytic shapes: ``geom`` names pybullet's constant (``"GEOM_SPHERE"``),
    ``params`` are ``createCollisionShape``'s (radius, halfExtents, height, planeNormal)."""
    return CollisionShape(p.createCollisionShape(getattr(p, geom), physicsClientId=client, **params), source=source)


# pybullet's command buffer (SharedMemoryPublic.h, B3_MAX_NUM_VERTICES and B3_MAX_NUM_INDICES).
MAX_COMMAND_VERTICES = 131_072
MAX_COMMAND_INDICES = 524_288
# Directions sampled on the sphere when a hull is reduced; each gives one extreme vertex.
HULL_DIRECTIONS = 2048


def concave_mesh_shape(client: int, mesh: trimesh.Trimesh) -> CollisionShape:
    """A static triangle mesh with the given vertices and faces (float32 through a file when large)."""
    if len(mesh.vertices) > MAX_COMMAND_VERTICES or 3 * len(mesh.faces) > MAX_COMMAND_INDICES:
        sid = p.createCollisionShape(
            p.GEOM_MESH, fileName=str(_stl_file(mesh)), flags=p.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=client
        )
        return CollisionShape(sid, source="concave-mesh")
    sid = p.createCollisionShape(
        p.GEOM_MESH,
        vertices=np.asarray(mesh.vertices, dtype=np.float64).tolist(),
        indices=np.asarray(mesh.faces, dtype=np.int64).ravel().tolist(),
        flags=p.GEOM_FORCE_CONCAVE_TRIMESH,
        physicsClientId=client,
    )
    return CollisionShape(sid, source="concave-mesh")


def _stl_file(mesh: trimesh.Trimesh):
    """The mesh as a binary STL in the cache folder, named by the SHA-256 of its contents."""
    from hybrid.cache import cache_root, content_file

    data = trimesh.exchange.stl.export_stl(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False))
    return content_file(cache_root() / "meshes", ".stl", data)  # atomic: whole file or none


def hull_points(hull: trimesh.Trimesh, directions: int = HULL_DIRECTIONS) -> np.ndarray:
    """(K, 3) vertices of a convex hull for Bullet: all of them when pybullet takes that many,
    else the extreme vertex along each of `directions` directions spread evenly over the
    sphere (a Fibonacci lattice), whose hull lies inside the true one."""
    vertices = np.asarray(hull.vertices, dtype=np.float64)
    if len(vertices) <= MAX_COMMAND_VERTICES:
        return vertices
    limit = directions
    k = np.arange(limit) + 0.5
    z = 1.0 - 2.0 * k / limit
    phi = np.pi * (1.0 + 5**0.5) * k
    r = np.sqrt(1.0 - z * z)
    directions = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    # float32 and (directions x vertices) blocks: ties aside, the same extremes at a third of the time.
    centred = (vertices - vertices.mean(axis=0)).T.astype(np.float32)
    directions = directions.astype(np.float32)
    keep = np.concatenate([np.argmax(directions[i : i + 64] @ centred, axis=1) for i in range(0, limit, 64)])
    return vertices[np.unique(keep)]


def convex_hull_shape(client: int, mesh: trimesh.Trimesh) -> CollisionShape:
    """The convex hull of the mesh's vertices (reduced to ``hull_points`` when pybullet cannot take them all)."""
    sid = p.createCollisionShape(p.GEOM_MESH, vertices=hull_points(mesh.convex_hull).tolist(), physicsClientId=client)
    return CollisionShape(sid, convex_parts=1, source="convex-hull")


def decomposition_shape(client: int, path) -> CollisionShape:
    """A compound of the convex parts in the decomposition file at ``path`` (``decomposition.decompose``)."""
    from hybrid.physics import decomposition

    sid = p.createCollisionShape(p.GEOM_MESH, fileName=str(path), physicsClientId=client)
    return CollisionShape(sid, convex_parts=decomposition.count_parts(path), source="decomposition")


def collision_shape(client: int, obj: "ObjectSpec", mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    """Create the collision shape of `obj` in pybullet client `client`; `mesh` is its
    ``geometry.build_mesh`` when its shape ``collides_as_mesh``, else None."""
    shape_id = obj.shape.collision(client, obj, mesh)
    if shape_id.shape_id < 0:
        raise BodyBuildError(f"object {obj.name!r}: pybullet refused its {obj.shape.type} collision shape")
    return shape_id
