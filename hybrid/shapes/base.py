"""What a shape is: its spec model, and everything the stages need from it.

A shape is one subclass of ``ShapeSpec`` (its YAML fields plus a ``type`` Literal)
whose methods answer each stage's question: the triangles the rasteriser draws
(``mesh``), the volume and inertia the physics needs (``volume``, ``inertia``), its
pybullet collision shape (``collision``), its signed-distance description for the
field solvers (``collider``), and the load-time checks of its files
(``check_file``, ``preflight``). Only ``mesh`` is required: every other method has
a default computed from the mesh (a closed solid colliding as its convex hull when
it moves and as its triangles when it does not), which primitives replace with
exact, analytic answers.

A shape that dataset recipes may draw also has a ``ShapeOption``: its recipe
model, whose ``draw`` turns a size and a random generator into a scene shape plus
what the placement needs (``DrawnShape``).

``register_shape(SphereShape, SphereOption)`` adds both to the registries
(``SHAPES``, ``SHAPE_OPTIONS``), which the scene's and the recipe's shape unions are
built from. Heavy libraries (trimesh, pybullet, Taichi) are imported inside the
methods, so reading a scene file loads none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Optional

import numpy as np
from pydantic import Field

from hybrid.data.distributions import PositiveNumber, RecipeSpec
from hybrid.spec.registry import TaggedUnion
from hybrid.spec.types import Positive, Spec

if TYPE_CHECKING:
    import trimesh

    from hybrid.fields.colliders import ColliderShape
    from hybrid.physics.shapes import CollisionShape
    from hybrid.scene.spec import ObjectSpec, Scene
    from hybrid.spec.errors import Issue, SourceMap


class ShapeSpec(Spec):
    """Base of every shape model. Subclasses add ``type: Literal["name"]`` and their fields.

    The shape frame is the object's own frame: its pose in the scene places it.
    """

    # The object may only be `body: static` (planes, terrain: no volume to move).
    static_only: ClassVar[bool] = False
    # Fields that name a file, relative to the file that names the shape.
    file_fields: ClassVar[tuple[str, ...]] = ()
    # Whether `collision` and `inertia` take the triangles of `mesh` (built once by the
    # physics and passed in); analytic shapes say False and get None.
    collides_as_mesh: ClassVar[bool] = True
    # The last words of the error when the shape cannot be built.
    build_hint: ClassVar[str] = "check the shape's parameters"

    def mesh(self, seed: int = 0) -> "trimesh.Trimesh":
        """Triangles in the shape frame, with per-vertex ``visual.uv`` and vertex normals.

        ``seed`` drives procedural shapes (terrain), so they follow the scene seed.
        """
        raise NotImplementedError(f"shape {type(self).__name__} has no mesh")

    def volume(self) -> float:
        """m^3, to turn a density into a mass: the closed mesh's, or its convex hull's when open."""
        return float(abs(closed_solid(self.mesh()).volume))

    def inertia(self, mesh: Optional["trimesh.Trimesh"]) -> tuple[np.ndarray, np.ndarray]:
        """(centre of mass (3,) m in the shape frame, inertia tensor per kilogram (3, 3) m^2 about it).

        Integrated over the closed mesh; an open mesh is treated as its convex hull (as
        its volume is). Raises ValueError for a mesh that encloses no volume.
        """
        assert mesh is not None
        solid = closed_solid(mesh)
        if solid.volume < 0:  # inward-facing winding: same solid, flipped sign
            solid = solid.copy()
            solid.invert()
        if not solid.volume > 0:
            raise ValueError("the mesh encloses no volume")
        # trimesh integrates with density 1, so moment_inertia / mass is the tensor per kilogram.
        return np.asarray(solid.center_mass, dtype=np.float64), np.asarray(solid.moment_inertia) / float(solid.mass)

    def collision(self, client: int, obj: "ObjectSpec", mesh: Optional["trimesh.Trimesh"]) -> "CollisionShape":
        """The pybullet collision shape in client ``client``: the triangles for static and
        kinematic bodies, the convex hull for dynamic ones (Bullet moves only convex pieces)."""
        from hybrid.physics.shapes import concave_mesh_shape, convex_hull_shape

        assert mesh is not None
        if obj.physics.body != "dynamic":
            return concave_mesh_shape(client, mesh)
        return convex_hull_shape(client, mesh)

    def collider(self, obj: "ObjectSpec", seed: int = 0) -> "ColliderShape":
        """The field solvers' SDF description: the convex hull of the mesh (see ``hybrid.fields.colliders``)."""
        from hybrid.fields.colliders import hull_collider

        return hull_collider(np.asarray(self.mesh(seed).vertices, dtype=np.float64))

    @classmethod
    def check_file(cls, field: str, path: str) -> Optional[str]:
        """Why the existing file ``path`` given in ``field`` cannot be used, or None (checked at load)."""
        return None

    def preflight(self, obj: "ObjectSpec", scene: "Scene", at: tuple, source: "SourceMap") -> list["Issue"]:
        """Problems building the World would meet, found at load (``hybrid.scene.preflight``); ``at`` is
        the path of this shape in the file."""
        return []


def closed_solid(mesh: "trimesh.Trimesh") -> "trimesh.Trimesh":
    """The solid a mesh encloses, for volume and inertia: the mesh itself when it is closed and its
    faces wind consistently; a closed mesh whose faces wind both ways (a file that lists some faces
    backwards) with its winding made consistent first; an open one's convex hull."""
    if not mesh.is_watertight:
        return mesh.convex_hull
    if mesh.is_winding_consistent:
        return mesh
    import trimesh

    fixed = mesh.copy()
    trimesh.repair.fix_winding(fixed)
    return fixed


class AxialShape(ShapeSpec):
    """A solid of revolution about the local z axis, centred on the origin: ``radius`` and ``length`` along
    z (metres), with exact volume, inertia and collision shapes (no triangles needed).

    Subclasses set ``type`` to their Literal and may say what ``length`` measures.
    """

    type: str
    radius: Positive
    length: Positive = Field(description="along the local z axis, metres")

    collides_as_mesh = False


# ---------------------------------------------------------------- recipes


@dataclass(frozen=True)
class DrawnShape:
    """One drawn shape of a recipe clip: ``shape``, the scene's shape mapping; ``radius``,
    its bounding radius about the origin (m); ``drop(R)``, how far it reaches below its
    origin when rotated by R (3x3), so it clears the floor with its centre at z >= drop."""

    shape: dict
    radius: float
    drop: Callable[[np.ndarray], float]


class ShapeOption(RecipeSpec):
    """Base of a shape's recipe option: its relative weight and size, plus its own fields."""

    weight: Positive = 1.0
    size: Optional[PositiveNumber] = Field(None, description="metres; replaces objects.size for this shape")

    file_fields: ClassVar[tuple[str, ...]] = ()

    def draw(self, size: float, rng: np.random.Generator) -> DrawnShape:
        """The shape of one object of ``size`` metres (what size measures is the option's to say)."""
        raise NotImplementedError

    @classmethod
    def check_file(cls, field: str, path: str) -> Optional[str]:
        """Why the existing file ``path`` given in ``field`` cannot be used, or None (checked at load)."""
        return None


# ---------------------------------------------------------------- the registry


SHAPES = TaggedUnion("shape")
SHAPE_OPTIONS = TaggedUnion("recipe shape option")


def register_shape(shape: type[ShapeSpec], option: Optional[type[ShapeOption]] = None) -> type[ShapeSpec]:
    """Make ``shape`` (and its recipe ``option``, if recipes may draw it) a shape of every scene.

    Refuses a ``type`` registered twice. Registering after the scene models were built
    rebuilds them, so a shape defined in any module works once that module is imported.
    """
    if not issubclass(shape, ShapeSpec):
        raise TypeError(f"{shape.__name__} must subclass hybrid.shapes.ShapeSpec")
    if option is not None and not issubclass(option, ShapeOption):
        raise TypeError(f"{option.__name__} must subclass hybrid.shapes.ShapeOption")
    SHAPES.add(shape)
    if option is not None:
        SHAPE_OPTIONS.add(option)
    return shape


def unregister_shape(name: str) -> None:
    """Take the shape ``name`` (and its recipe option) out of the registries, rebuilding the models."""
    SHAPES.remove(name)
    if name in SHAPE_OPTIONS:
        SHAPE_OPTIONS.remove(name)
