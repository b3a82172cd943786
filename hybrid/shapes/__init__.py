"""Shapes: one module per shape kind, each its spec model and everything the stages need of it.

| type | module | notes |
|---|---|---|
| sphere | sphere.py | |
| box | box.py | |
| cylinder | cylinder.py | along local z |
| capsule | capsule.py | along local z |
| plane | plane.py | static only |
| mesh | mesh.py | a mesh file |
| heightfield | heightfield.py | static only |
| lathe | lathe.py | an (r, z) outline swept about local z; exact convex parts |

How to add a shape: write one module with a ``ShapeSpec`` subclass, its fields and
``type: Literal["name"]``, whose ``mesh(seed)`` returns its triangles (trimesh, in the
object's frame, with ``visual.uv`` and vertex normals), and end it with one line::

    register_shape(ConeShape)

That is all: scenes accept ``shape: {type: cone, ...}`` with located errors, the
JSON Schema lists it, the rasteriser draws its mesh, and the physics and the field
solvers use defaults taken from the mesh (a uniform solid colliding as its convex
hull when dynamic, as its triangles when static or kinematic; see
``hybrid.shapes.base.ShapeSpec``). Override ``volume``, ``inertia``, ``collision`` or
``collider`` for exact analytic answers, ``static_only`` for shapes that cannot move,
``file_fields`` / ``check_file`` / ``preflight`` for shapes read from files. For
dataset recipes to draw it, also write a ``ShapeOption`` subclass with ``draw`` and
register it with the shape: ``register_shape(ConeShape, ConeOption)``.

Built-in shapes register when this package is imported; a shape registered later
(from any module) rebuilds the scene models, so importing its module is enough.
"""

from hybrid.shapes.base import SHAPE_OPTIONS, SHAPES, DrawnShape, ShapeOption, ShapeSpec, register_shape, unregister_shape

# Importing the shape modules registers them, in this order (the order of the unions).
from hybrid.shapes import sphere, box, cylinder, capsule, plane, mesh, heightfield, lathe  # noqa: E402,F401  isort: skip
from hybrid.shapes.box import BoxOption, BoxShape  # noqa: E402
from hybrid.shapes.capsule import CapsuleOption, CapsuleShape  # noqa: E402
from hybrid.shapes.cylinder import CylinderOption, CylinderShape  # noqa: E402
from hybrid.shapes.heightfield import HeightfieldShape, TerrainGenerator  # noqa: E402
from hybrid.shapes.mesh import MeshOption, MeshShape  # noqa: E402
from hybrid.shapes.plane import PlaneShape  # noqa: E402
from hybrid.shapes.sphere import SphereOption, SphereShape  # noqa: E402

__all__ = [
    "SHAPES",
    "SHAPE_OPTIONS",
    "BoxOption",
    "BoxShape",
    "CapsuleOption",
    "CapsuleShape",
    "CylinderOption",
    "CylinderShape",
    "DrawnShape",
    "HeightfieldShape",
    "MeshOption",
    "MeshShape",
    "PlaneShape",
    "ShapeOption",
    "ShapeSpec",
    "SphereOption",
    "SphereShape",
    "TerrainGenerator",
    "register_shape",
    "unregister_shape",
]
