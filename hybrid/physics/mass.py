"""Mass, centre of mass and inertia tensor of a dynamic body.

pybullet estimates inertia from a shape's bounding box whenever the inertial
frame is offset from the collision shape, and always for capsules and meshes, so
a tumbling cup or a rolling capsule would spin wrongly. We compute the exact
tensor of a uniform solid here (analytic for primitives, from the triangle mesh
otherwise) and hand pybullet its principal moments and axes.

Each shape gives its centre of mass (3,) in metres in the shape frame and its inertia
tensor per kilogram (3, 3) in m^2 about that point (``inertia`` of its model in
``hybrid.shapes``: analytic for primitives, integrated over the closed mesh by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import trimesh

from hybrid import geometry
from hybrid.physics.errors import BodyBuildError
from hybrid.scene import spec
from hybrid.transforms import matrix_to_quat


@dataclass(frozen=True)
class MassProperties:
    """Mass properties of a uniform solid body.

    ``mass_kg``; ``com`` (3,) metres in the shape frame; ``principal_moments`` (3,)
    kg m^2 about the centre of mass along the principal axes; ``principal_quat``
    (x, y, z, w) rotating principal-axis coordinates into shape-frame coordinates.
    """

    mass_kg: float
    com: np.ndarray
    principal_moments: np.ndarray
    principal_quat: tuple[float, float, float, float]


def body_mass(obj: spec.ObjectSpec) -> float:
    """Mass in kg: ``physics.mass``, else ``density`` (or ``spec.DEFAULT_DENSITY``) x ``geometry.shape_volume``."""
    phys = obj.physics
    if phys.mass is not None:
        return float(phys.mass)
    density = phys.density if phys.density is not None else spec.DEFAULT_DENSITY
    return float(density) * float(geometry.shape_volume(obj.shape))


def principal_axes(tensor: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Eigen-decomposition of a symmetric inertia tensor into moments and a right-handed rotation."""
    tensor = 0.5 * (tensor + tensor.T)
    moments, axes = np.linalg.eigh(tensor)  # columns of `axes` are the principal directions
    if np.linalg.det(axes) < 0:
        axes[:, 2] = -axes[:, 2]
    return np.maximum(moments, 0.0), matrix_to_quat(axes)


def mass_properties(obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh] = None) -> MassProperties:
    """Mass properties of a dynamic object; `mesh` is its ``geometry.build_mesh`` when its shape ``collides_as_mesh``."""
    if obj.shape.static_only:
        raise BodyBuildError(f"object {obj.name!r}: a {obj.shape.type} cannot be a dynamic body (make it `body: static`)")
    try:
        com, per_kg = obj.shape.inertia(mesh)
        mass = body_mass(obj)
    except (ValueError, RuntimeError) as err:  # RuntimeError: qhull's, for a hull of flat or too few points
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "qhull" in reason.lower():
            reason = "its points all lie in one plane, so its convex hull has no volume"
        # A given mass does not help: the inertia still needs a solid.
        fix = "close the mesh" if obj.physics.mass is not None else "give `physics.mass` and close the mesh"
        raise BodyBuildError(
            f"object {obj.name!r}: a dynamic body needs a solid shape, and this mesh is none ({reason}); "
            f"{fix}, or make the object `body: static`"
        ) from None
    if not mass > 0:
        raise BodyBuildError(
            f"object {obj.name!r}: its shape has no volume, so density gives no mass; give `physics.mass`"
        )
    if np.allclose(per_kg, np.diag(np.diag(per_kg)), rtol=0, atol=1e-12 * max(1e-300, np.abs(per_kg).max())):
        # Already principal in the shape frame (every primitive): keep the axes exactly.
        moments, quat = np.diag(per_kg).copy(), (0.0, 0.0, 0.0, 1.0)
    else:
        moments, quat = principal_axes(per_kg)
    return MassProperties(mass_kg=mass, com=com, principal_moments=moments * mass, principal_quat=quat)
