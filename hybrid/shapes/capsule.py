"""A capsule: a cylinder of ``radius`` and ``length`` metres along local z with a hemisphere on each end."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from hybrid.shapes.base import AxialShape, DrawnShape, register_shape
from hybrid.shapes.cylinder import CylinderOption
from hybrid.spec.types import Positive


class CapsuleShape(AxialShape):
    type: Literal["capsule"]
    length: Positive = Field(description="length of the straight part along local z, excluding the caps")

    def mesh(self, seed: int = 0):
        from hybrid.geometry import SPHERE_SEGMENTS, uv_sphere

        half = self.length / 2.0
        return uv_sphere(self.radius, SPHERE_SEGMENTS[0], SPHERE_SEGMENTS[1], (half, -half))

    def volume(self) -> float:
        return math.pi * self.radius**2 * self.length + 4.0 / 3.0 * math.pi * self.radius**3

    def inertia(self, mesh):
        """Cylinder of length h plus two hemispherical caps, mass shared by volume.

        I_zz = m_cyl r^2 / 2 + m_sph 2 r^2 / 5;
        I_xx = m_cyl (h^2/12 + r^2/4) + m_sph (2 r^2/5 + h^2/4 + 3 h r/8), where each cap's
        own moment 83/320 m_cap r^2 is carried to the centre by the parallel-axis theorem
        (cap centroid 3r/8 beyond the end of the cylinder).
        """
        r, h = self.radius, self.length
        v_cyl = np.pi * r * r * h
        v_sph = 4.0 / 3.0 * np.pi * r**3
        m_cyl, m_sph = v_cyl / (v_cyl + v_sph), v_sph / (v_cyl + v_sph)
        izz = m_cyl * r * r / 2.0 + m_sph * 0.4 * r * r
        ixx = m_cyl * (h * h / 12.0 + r * r / 4.0) + m_sph * (0.4 * r * r + h * h / 4.0 + 3.0 * h * r / 8.0)
        return np.zeros(3), np.diag([ixx, ixx, izz])

    def collision(self, client, obj, mesh):
        # pybullet's capsule runs along local z like ours, and its `height` is the straight part.
        from hybrid.physics.shapes import primitive_shape

        return primitive_shape(client, "GEOM_CAPSULE", radius=self.radius, height=self.length)

    def collider(self, obj, seed: int = 0):
        from hybrid.fields.colliders import CAPSULE, ColliderShape

        h = self.length / 2.0
        return ColliderShape(CAPSULE, np.array([self.radius, h, 0, 0], float), bound_radius=h + self.radius)


class CapsuleOption(CylinderOption):
    """Diameter = size, straight length along local z (without the caps) = size x aspect."""

    type: Literal["capsule"]  # type: ignore[assignment]

    def around_axis(self, r: float, length: float) -> DrawnShape:
        return DrawnShape(
            {"type": "capsule", "radius": r, "length": length},
            length / 2.0 + r,
            lambda R: length / 2.0 * abs(R[2, 2]) + r,
        )


register_shape(CapsuleShape, CapsuleOption)
