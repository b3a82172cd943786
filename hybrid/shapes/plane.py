"""An infinite ground plane z = 0 in the object's frame (solid below it); static only."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from hybrid.shapes.base import ShapeSpec, register_shape
from hybrid.spec.types import Positive


class PlaneShape(ShapeSpec):
    """An infinite plane z = 0 in the object's frame; `size` is how much of it is drawn."""

    type: Literal["plane"]
    size: tuple[Positive, Positive] = (20.0, 20.0)
    texture_scale: Positive = Field(1.0, description="texture repeats per metre")

    static_only = True
    collides_as_mesh = False

    def mesh(self, seed: int = 0):
        """The drawn part of the plane z = 0: a grid (not two triangles) so lighting interpolates well."""
        from hybrid.geometry import grid_mesh

        sx, sy = self.size
        n = 8
        xs = np.linspace(-sx / 2, sx / 2, n + 1)
        ys = np.linspace(-sy / 2, sy / 2, n + 1)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        return grid_mesh(gx, gy, np.zeros_like(gx), self.texture_scale)

    def volume(self) -> float:
        return 0.0  # static: no mass

    def collision(self, client, obj, mesh):
        from hybrid.physics.shapes import primitive_shape

        return primitive_shape(client, "GEOM_PLANE", source="plane", planeNormal=[0.0, 0.0, 1.0])

    def collider(self, obj, seed: int = 0):
        from hybrid.fields.colliders import HALFSPACE, ColliderShape

        return ColliderShape(HALFSPACE)


register_shape(PlaneShape)
