"""A solid cylinder of ``radius`` and ``length`` metres along the local z axis, centred on the object's origin."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from hybrid.data.distributions import PositiveNumber
from hybrid.shapes.base import AxialShape, DrawnShape, ShapeOption, register_shape


class CylinderShape(AxialShape):
    type: Literal["cylinder"]

    def mesh(self, seed: int = 0):
        """Side with cylindrical UVs plus two caps with planar UVs; flat cap normals."""
        import trimesh

        from hybrid.geometry import CYLINDER_SEGMENTS

        n = CYLINDER_SEGMENTS
        r, h = self.radius, self.length / 2.0
        phis = np.linspace(0, 2 * np.pi, n + 1)
        c, s = np.cos(phis), np.sin(phis)
        verts, normals, uvs, faces = [], [], [], []
        # side: two rings
        for k, z in enumerate((-h, h)):
            for j in range(n + 1):
                verts.append((r * c[j], r * s[j], z))
                normals.append((c[j], s[j], 0.0))
                uvs.append((j / n, float(k)))
        for j in range(n):
            a, b, cc, d = j, j + 1, (n + 1) + j, (n + 1) + j + 1
            faces += [(a, b, d), (a, d, cc)]
        # caps
        for z, nz in ((h, 1.0), (-h, -1.0)):
            center = len(verts)
            verts.append((0.0, 0.0, z))
            normals.append((0.0, 0.0, nz))
            uvs.append((0.5, 0.5))
            for j in range(n + 1):
                verts.append((r * c[j], r * s[j], z))
                normals.append((0.0, 0.0, nz))
                uvs.append((0.5 + 0.5 * c[j], 0.5 + 0.5 * s[j]))
            for j in range(n):
                a, b = center + 1 + j, center + 2 + j
                faces.append((center, a, b) if nz > 0 else (center, b, a))
        mesh = trimesh.Trimesh(np.array(verts), np.array(faces), vertex_normals=np.array(normals), process=False)
        mesh.visual = trimesh.visual.TextureVisuals(uv=np.array(uvs))
        return mesh

    def volume(self) -> float:
        return math.pi * self.radius**2 * self.length

    def inertia(self, mesh):
        # Solid cylinder along z: I_zz = m r^2 / 2, I_xx = I_yy = m (3 r^2 + h^2) / 12.
        r, h = self.radius, self.length
        side = (3 * r * r + h * h) / 12.0
        return np.zeros(3), np.diag([side, side, r * r / 2.0])

    def collision(self, client, obj, mesh):
        from hybrid.physics.shapes import primitive_shape

        return primitive_shape(client, "GEOM_CYLINDER", radius=self.radius, height=self.length)

    def collider(self, obj, seed: int = 0):
        from hybrid.fields.colliders import CYLINDER, ColliderShape

        h = self.length / 2.0
        return ColliderShape(CYLINDER, np.array([self.radius, h, 0, 0], float), bound_radius=float(np.hypot(h, self.radius)))


class CylinderOption(ShapeOption):
    """Diameter = size, length along local z = size x aspect."""

    type: Literal["cylinder"]
    aspect: PositiveNumber = 1.0

    def draw(self, size: float, rng: np.random.Generator) -> DrawnShape:
        r, length = size / 2.0, size * self.aspect.sample(rng)
        return self.around_axis(r, length)

    def around_axis(self, r: float, length: float) -> DrawnShape:
        """The drawn shape of radius ``r`` and ``length`` along local z (metres)."""
        return DrawnShape(
            {"type": self.type, "radius": r, "length": length},
            math.hypot(r, length / 2.0),
            # The axis end lowest, plus the rim circle's reach below it.
            lambda R: length / 2.0 * abs(R[2, 2]) + r * math.sqrt(max(0.0, 1.0 - R[2, 2] ** 2)),
        )


register_shape(CylinderShape, CylinderOption)
