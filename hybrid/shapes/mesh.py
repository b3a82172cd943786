"""A triangle mesh read from a file by trimesh (obj, stl, ply, glb, off), relative to the file that names it.

A dynamic mesh collides as its convex hull when it is convex, else as convex parts
from a decomposition (``hybrid.physics.decomposition``); a static or kinematic one
as its triangles. Its volume and inertia are the closed mesh's, or its convex
hull's when it is open; the field solvers see its convex hull.
"""

from __future__ import annotations

import functools
import os
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field

from hybrid.shapes.base import DrawnShape, ShapeOption, ShapeSpec, register_shape
from hybrid.spec.types import Positive


class MeshShape(ShapeSpec):
    """A triangle mesh file read by trimesh (obj, stl, ply, glb, off). Paths are relative to the scene file."""

    type: Literal["mesh"]
    file: str
    scale: Union[Positive, tuple[Positive, Positive, Positive]] = 1.0
    center: Literal["none", "centroid", "bounds"] = Field(
        "none", description="re-centre the mesh at its centre of mass (centroid) or bounding-box centre"
    )
    convex_decomposition: Literal["auto", "always", "never"] = Field(
        "auto",
        description="dynamic bodies: decompose concave meshes into convex parts (auto decides from the mesh)",
    )

    file_fields = ("file",)
    build_hint = "use a readable mesh (obj, stl, ply, glb, off)"

    def mesh(self, seed: int = 0):
        import trimesh

        if not os.path.isfile(self.file):
            raise FileNotFoundError(f"mesh file not found: {self.file}")
        mesh = _load_mesh_file(os.path.abspath(self.file), os.path.getmtime(self.file)).copy()
        scale = np.broadcast_to(np.asarray(self.scale, dtype=np.float64), (3,))
        mesh.apply_scale(1.0) if np.allclose(scale, 1) else mesh.apply_transform(np.diag([*scale, 1.0]))
        if self.center == "centroid":
            mesh.apply_translation(-mesh.center_mass if mesh.is_watertight else -mesh.centroid)
        elif self.center == "bounds":
            mesh.apply_translation(-mesh.bounds.mean(axis=0))
        uv = getattr(mesh.visual, "uv", None)
        if uv is None or len(uv) != len(mesh.vertices):
            # No UVs in the file: a box projection along the dominant normal axis, in metres.
            v = np.asarray(mesh.vertices)
            n = np.abs(np.asarray(mesh.vertex_normals))
            axis = n.argmax(axis=1)
            u = np.where(axis == 0, v[:, 1], v[:, 0])
            w = np.where(axis == 2, v[:, 1], v[:, 2])
            normals = np.asarray(mesh.vertex_normals).copy()
            mesh = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_normals=normals, process=False)
            mesh.visual = trimesh.visual.TextureVisuals(uv=np.stack([u, w], 1))
        return mesh

    def collision(self, client, obj, mesh):
        from hybrid.physics import decomposition
        from hybrid.physics.errors import BodyBuildError
        from hybrid.physics.shapes import decomposition_shape

        assert mesh is not None
        if obj.physics.body != "dynamic" or not decomposition.wants_decomposition(mesh, self.convex_decomposition):
            return super().collision(client, obj, mesh)
        try:
            path = decomposition.decompose(mesh)
        except (RuntimeError, OSError) as err:
            raise BodyBuildError(
                f"object {obj.name!r}: convex decomposition of {self.file} failed ({err}); "
                "set `convex_decomposition: never` to collide with its convex hull, or simplify the mesh"
            ) from None
        return decomposition_shape(client, path)

    def preflight(self, obj, scene, at, source):
        """A file trimesh cannot read; a dynamic body without a solid; a flat mesh where fields need a solid."""
        if not os.path.isfile(self.file):
            return []  # already reported as a missing file
        where = at + ("file",)
        try:
            mesh = self.mesh(scene.seed)
        except Exception as err:  # noqa: BLE001 - trimesh, numpy and the file formats raise many types
            return [
                source.issue(
                    where,
                    f"object {obj.name!r}: cannot read the mesh {self.file} ({type(err).__name__}: {err}); "
                    "use a readable mesh file (obj, stl, ply, glb, off)",
                )
            ]
        issues = []
        if obj.physics.body == "dynamic":
            from hybrid.physics.errors import BodyBuildError
            from hybrid.physics.mass import mass_properties

            try:
                mass_properties(obj, mesh)
            except BodyBuildError as err:
                message = str(err).removeprefix(f"object {obj.name!r}: ")
                issues.append(source.issue(where, message))
        if scene.fields is not None and _is_flat(np.asarray(mesh.vertices, dtype=np.float64)):
            issues.append(
                source.issue(
                    where,
                    "this mesh is flat (all its vertices lie in one plane), so it cannot be a solid boundary of the "
                    "fields, which take each mesh as its convex hull; give it some thickness, or use a thin `box`",
                )
            )
        return issues


@functools.lru_cache(maxsize=64)
def _load_mesh_file(path: str, mtime: float):
    import trimesh

    loaded = trimesh.load(path, force="mesh", process=True)
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise ValueError(f"{path}: no triangles found in this mesh file")
    return loaded


def _is_flat(vertices: np.ndarray) -> bool:
    """Whether the points span no volume (all in one plane or on one line), relative to their size."""
    centred = vertices - vertices.mean(axis=0)
    spread = np.linalg.svd(centred.T @ centred / max(1, len(vertices)), compute_uv=False)
    return not spread[2] > 1e-12 * max(spread[0], 1e-300)


class MeshOption(ShapeOption):
    """A mesh file, re-centred at its bounding-box centre and scaled so its largest extent = size.

    Dynamic concave meshes are split into convex parts once per distinct scale and
    cached: a `choice` of a few sizes keeps that to a few decompositions.
    """

    type: Literal["mesh"]
    file: str = Field(min_length=1, description="relative to the recipe file")
    convex_decomposition: Literal["auto", "always", "never"] = "auto"

    file_fields = ("file",)

    def draw(self, size: float, rng: np.random.Generator) -> DrawnShape:
        path = os.path.abspath(self.file)
        extent, points = _mesh_points(path, os.path.getmtime(path))
        scale = size / extent
        pts = points * scale
        shape = {"type": "mesh", "file": path, "scale": scale, "center": "bounds", "convex_decomposition": self.convex_decomposition}
        return DrawnShape(shape, float(np.max(np.linalg.norm(pts, axis=1))), lambda R: float(np.max(-(pts @ R[2]))))

    @classmethod
    def check_file(cls, field: str, path: str) -> Optional[str]:
        """A mesh trimesh cannot read, or a flat one (no volume to be a body)."""
        try:
            mesh = MeshShape(type="mesh", file=path, center="bounds").mesh()
        except Exception as err:  # trimesh raises many kinds for a bad file; all mean "cannot use it"
            return f"cannot read the mesh {path} ({err}); use a triangle mesh file (obj, stl, ply, glb, off)"
        if not np.all(np.asarray(mesh.extents) > 0):
            return f"the mesh {path} is flat (extents {np.round(mesh.extents, 6).tolist()}); it needs volume to be a body"
        return None


@functools.lru_cache(maxsize=64)
def _mesh_points(path: str, mtime: float) -> tuple[float, np.ndarray]:
    """(largest extent, convex hull vertices) of a mesh file centred at its bounding-box centre, at scale 1."""
    mesh = MeshShape(type="mesh", file=path, center="bounds").mesh()
    return float(np.max(mesh.extents)), np.asarray(mesh.convex_hull.vertices, dtype=np.float64)


register_shape(MeshShape, MeshOption)
