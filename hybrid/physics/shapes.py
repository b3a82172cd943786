"""pybullet collision shapes for scene shapes, in the object's own frame.

Registry: ``COLLISION_BUILDERS`` maps a shape type to a function
``(client, obj, mesh) -> CollisionShape``; adding a shape is one function plus one
line. Primitives use Bullet's analytic shapes with the spec's dimensions (pybullet's
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
from typing import Callable, Optional

import numpy as np
from hybrid.physics.pybullet_quiet import pybullet as p
import trimesh

from hybrid.physics import decomposition
from hybrid.physics.errors import BodyBuildError
from hybrid.scene import spec


@dataclass(frozen=True)
class CollisionShape:
    """A pybullet collision shape id plus how it was made (``convex_parts``: hulls in it, 0 for analytic shapes)."""

    shape_id: int
    convex_parts: int = 0
    source: str = "primitive"  # primitive | plane | concave-mesh | convex-hull | decomposition


def _sphere(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    return CollisionShape(p.createCollisionShape(p.GEOM_SPHERE, radius=obj.shape.radius, physicsClientId=client))


def _box(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    half = [s / 2.0 for s in obj.shape.size]
    return CollisionShape(p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client))


def _cylinder(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    shape = obj.shape
    sid = p.createCollisionShape(p.GEOM_CYLINDER, radius=shape.radius, height=shape.length, physicsClientId=client)
    return CollisionShape(sid)


def _capsule(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    shape = obj.shape
    sid = p.createCollisionShape(p.GEOM_CAPSULE, radius=shape.radius, height=shape.length, physicsClientId=client)
    return CollisionShape(sid)


def _plane(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    sid = p.createCollisionShape(p.GEOM_PLANE, planeNormal=[0.0, 0.0, 1.0], physicsClientId=client)
    return CollisionShape(sid, source="plane")


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
    import hashlib

    from hybrid.cache import DamagedEntry, cache_root, cached_file

    data = trimesh.exchange.stl.export_stl(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False))
    digest = hashlib.sha256(data).hexdigest()

    def check(found: bytes) -> None:
        # The name is the content's hash, so a damaged or cut-off file is told by rehashing it.
        if hashlib.sha256(found).hexdigest() != digest:
            raise DamagedEntry("content does not match the SHA-256 in its name")

    return cached_file(cache_root() / "meshes" / f"{digest}.stl", lambda: data, check)  # atomic: whole file or none


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


def _heightfield(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    assert mesh is not None
    return concave_mesh_shape(client, mesh)


def _mesh(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    assert mesh is not None
    if obj.physics.body != "dynamic":
        return concave_mesh_shape(client, mesh)
    if not decomposition.wants_decomposition(mesh, obj.shape.convex_decomposition):
        sid = p.createCollisionShape(p.GEOM_MESH, vertices=hull_points(mesh.convex_hull).tolist(), physicsClientId=client)
        return CollisionShape(sid, convex_parts=1, source="convex-hull")
    try:
        path = decomposition.decompose(mesh)
    except (RuntimeError, OSError) as err:
        raise BodyBuildError(
            f"object {obj.name!r}: convex decomposition of {obj.shape.file} failed ({err}); "
            "set `convex_decomposition: never` to collide with its convex hull, or simplify the mesh"
        ) from None
    sid = p.createCollisionShape(p.GEOM_MESH, fileName=str(path), physicsClientId=client)
    return CollisionShape(sid, convex_parts=decomposition.count_parts(path), source="decomposition")


CollisionBuilder = Callable[[int, spec.ObjectSpec, Optional[trimesh.Trimesh]], CollisionShape]

COLLISION_BUILDERS: dict[str, CollisionBuilder] = {
    "sphere": _sphere,
    "box": _box,
    "cylinder": _cylinder,
    "capsule": _capsule,
    "plane": _plane,
    "mesh": _mesh,
    "heightfield": _heightfield,
}

# Shapes whose collision geometry is built from geometry.build_mesh's triangles.
NEEDS_MESH = frozenset({"mesh", "heightfield"})


def collision_shape(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    """Create the collision shape of `obj` in pybullet client `client`."""
    shape_id = COLLISION_BUILDERS[obj.shape.type](client, obj, mesh)
    if shape_id.shape_id < 0:
        raise BodyBuildError(f"object {obj.name!r}: pybullet refused its {obj.shape.type} collision shape")
    return shape_id
