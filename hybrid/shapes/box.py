"""A solid cuboid of full extents ``size`` (x, y, z) metres, centred on the object's origin."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from hybrid.data.distributions import PositiveNumber
from hybrid.shapes.base import DrawnShape, ShapeOption, ShapeSpec, register_shape
from hybrid.spec.types import Positive


class BoxShape(ShapeSpec):
    type: Literal["box"]
    size: tuple[Positive, Positive, Positive] = Field(description="full extents along x, y, z in metres")

    collides_as_mesh = False

    def mesh(self, seed: int = 0):
        """24 vertices (4 per face) so each face has flat normals and its own 0..1 UV square."""
        import trimesh

        hx, hy, hz = (s / 2.0 for s in self.size)
        verts, normals, uvs, faces = [], [], [], []
        for axis in range(3):
            for sign in (1.0, -1.0):
                n = np.zeros(3)
                n[axis] = sign
                # Tangents with t1 x t2 = n, so corners run counter-clockwise seen from outside.
                t1 = np.eye(3)[(axis + 1) % 3]
                t2 = np.cross(n, t1)
                half = np.array([hx, hy, hz])
                base = len(verts)
                for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                    p = n * half + (2 * du - 1) * t1 * half + (2 * dv - 1) * t2 * half
                    verts.append(p)
                    normals.append(n)
                    uvs.append((du, dv))
                faces.append((base, base + 1, base + 2))
                faces.append((base, base + 2, base + 3))
        mesh = trimesh.Trimesh(np.array(verts), np.array(faces), vertex_normals=np.array(normals), process=False)
        mesh.visual = trimesh.visual.TextureVisuals(uv=np.array(uvs, dtype=np.float64))
        return mesh

    def volume(self) -> float:
        return float(np.prod(self.size))

    def inertia(self, mesh):
        # Solid cuboid: I_xx = m (b^2 + c^2) / 12 and cyclic.
        a, b, c = self.size
        return np.zeros(3), np.diag([(b * b + c * c) / 12.0, (a * a + c * c) / 12.0, (a * a + b * b) / 12.0])

    def collision(self, client, obj, mesh):
        from hybrid.physics.shapes import primitive_shape

        return primitive_shape(client, "GEOM_BOX", halfExtents=[s / 2.0 for s in self.size])

    def collider(self, obj, seed: int = 0):
        from hybrid.fields.colliders import BOX, ColliderShape

        half = np.asarray(self.size, float) / 2.0
        return ColliderShape(BOX, np.array([*half, 0.0]), bound_radius=float(np.linalg.norm(half)))


class BoxOption(ShapeOption):
    """Full extents = size x aspect (a cube by default)."""

    type: Literal["box"]
    aspect: tuple[PositiveNumber, PositiveNumber, PositiveNumber] = (1.0, 1.0, 1.0)

    def draw(self, size: float, rng: np.random.Generator) -> DrawnShape:
        ext = np.array([size * a.sample(rng) for a in self.aspect])
        return DrawnShape(
            {"type": "box", "size": [float(v) for v in ext]},
            float(np.linalg.norm(ext) / 2.0),
            lambda R: float(0.5 * np.abs(R[2]) @ ext),
        )


register_shape(BoxShape, BoxOption)
