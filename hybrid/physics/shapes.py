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


def concave_mesh_shape(client: int, mesh: trimesh.Trimesh) -> CollisionShape:
    """A static triangle mesh with exactly the given vertices and faces."""
    sid = p.createCollisionShape(
        p.GEOM_MESH,
        vertices=np.asarray(mesh.vertices, dtype=np.float64).tolist(),
        indices=np.asarray(mesh.faces, dtype=np.int64).ravel().tolist(),
        flags=p.GEOM_FORCE_CONCAVE_TRIMESH,
        physicsClientId=client,
    )
    return CollisionShape(sid, source="concave-mesh")


def _heightfield(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    assert mesh is not None
    return concave_mesh_shape(client, mesh)


def _mesh(client: int, obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh]) -> CollisionShape:
    assert mesh is not None
    if obj.physics.body != "dynamic":
        return concave_mesh_shape(client, mesh)
    if not decomposition.wants_decomposition(mesh, obj.shape.convex_decomposition):
        hull = mesh.convex_hull
        sid = p.createCollisionShape(
            p.GEOM_MESH, vertices=np.asarray(hull.vertices, dtype=np.float64).tolist(), physicsClientId=client
        )
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
