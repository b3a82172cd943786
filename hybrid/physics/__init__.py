"""Rigid bodies on pybullet: one body per scene object, one private client per World.

``hybrid.world.World`` drives these modules; the pieces are usable alone:
``bodies`` (an ObjectSpec -> a pybullet body), ``shapes`` (collision shapes),
``mass`` (exact mass properties), ``decomposition`` (convex parts of concave
meshes, cached), ``kinematic`` (prescribed motion), ``contacts`` (per-frame contact
reduction), ``overlaps`` (objects that start inside one another) and ``checks``
(blow-up detection).
"""

from hybrid.physics.errors import BodyBuildError, PhysicsError, SimulationError

__all__ = ["BodyBuildError", "PhysicsError", "SimulationError"]
