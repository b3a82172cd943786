"""A solid ball of ``radius`` metres centred on the object's origin."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from hybrid.shapes.base import DrawnShape, ShapeOption, ShapeSpec, register_shape
from hybrid.spec.types import Positive


class SphereShape(ShapeSpec):
    type: Literal["sphere"]
    radius: Positive

    collides_as_mesh = False

    def mesh(self, seed: int = 0):
        from hybrid.geometry import SPHERE_SEGMENTS, uv_sphere

        return uv_sphere(self.radius, *SPHERE_SEGMENTS)

    def volume(self) -> float:
        return 4.0 / 3.0 * math.pi * self.radius**3

    def inertia(self, mesh):
        # Solid sphere: I = 2/5 m r^2 about any axis.
        return np.zeros(3), np.eye(3) * 0.4 * self.radius**2

    def collision(self, client, obj, mesh):
        from hybrid.physics.shapes import primitive_shape

        return primitive_shape(client, "GEOM_SPHERE", radius=self.radius)

    def collider(self, obj, seed: int = 0):
        from hybrid.fields.colliders import SPHERE, ColliderShape

        return ColliderShape(SPHERE, np.array([self.radius, 0, 0, 0], float), bound_radius=self.radius)


class SphereOption(ShapeOption):
    """Diameter = size."""

    type: Literal["sphere"]

    def draw(self, size: float, rng: np.random.Generator) -> DrawnShape:
        r = size / 2.0
        return DrawnShape({"type": "sphere", "radius": r}, r, lambda R: r)


register_shape(SphereShape, SphereOption)
