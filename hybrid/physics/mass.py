"""Mass, centre of mass and inertia tensor of a dynamic body.

pybullet estimates inertia from a shape's bounding box whenever the inertial
frame is offset from the collision shape, and always for capsules and meshes, so
a tumbling cup or a rolling capsule would spin wrongly. We compute the exact
tensor of a uniform solid here (analytic for primitives, from the triangle mesh
otherwise) and hand pybullet its principal moments and axes.

Registry: ``INERTIA`` maps a shape type to a function returning the centre of mass
(3,) in metres in the shape frame and the inertia tensor per kilogram (3, 3) in
m^2 about that point. A new dynamic shape is one function plus one line there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

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


def _sphere(shape: spec.SphereShape, mesh: Optional[trimesh.Trimesh]) -> tuple[np.ndarray, np.ndarray]:
    # Solid sphere: I = 2/5 m r^2 about any axis.
    return np.zeros(3), np.eye(3) * 0.4 * shape.radius**2


def _box(shape: spec.BoxShape, mesh: Optional[trimesh.Trimesh]) -> tuple[np.ndarray, np.ndarray]:
    # Solid cuboid: I_xx = m (b^2 + c^2) / 12 and cyclic.
    a, b, c = shape.size
    return np.zeros(3), np.diag([(b * b + c * c) / 12.0, (a * a + c * c) / 12.0, (a * a + b * b) / 12.0])


def _cylinder(shape: spec.CylinderShape, mesh: Optional[trimesh.Trimesh]) -> tuple[np.ndarray, np.ndarray]:
    # Solid cylinder along z: I_zz = m r^2 / 2, I_xx = I_yy = m (3 r^2 + h^2) / 12.
    r, h = shape.radius, shape.length
    side = (3 * r * r + h * h) / 12.0
    return np.zeros(3), np.diag([side, side, r * r / 2.0])


def _capsule(shape: spec.CapsuleShape, mesh: Optional[trimesh.Trimesh]) -> tuple[np.ndarray, np.ndarray]:
    """Cylinder of length h plus two hemispherical caps, mass shared by volume.

    I_zz = m_cyl r^2 / 2 + m_sph 2 r^2 / 5;
    I_xx = m_cyl (h^2/12 + r^2/4) + m_sph (2 r^2/5 + h^2/4 + 3 h r/8), where each cap's
    own moment 83/320 m_cap r^2 is carried to the centre by the parallel-axis theorem
    (cap centroid 3r/8 beyond the end of the cylinder).
    """
    r, h = shape.radius, shape.length
    v_cyl = np.pi * r * r * h
    v_sph = 4.0 / 3.0 * np.pi * r**3
    m_cyl, m_sph = v_cyl / (v_cyl + v_sph), v_sph / (v_cyl + v_sph)
    izz = m_cyl * r * r / 2.0 + m_sph * 0.4 * r * r
    ixx = m_cyl * (h * h / 12.0 + r * r / 4.0) + m_sph * (0.4 * r * r + h * h / 4.0 + 3.0 * h * r / 8.0)
    return np.zeros(3), np.diag([ixx, ixx, izz])


def _mesh(shape: spec.MeshShape, mesh: Optional[trimesh.Trimesh]) -> tuple[np.ndarray, np.ndarray]:
    """Integrate over the closed mesh; an open mesh is treated as its convex hull (as its volume is)."""
    assert mesh is not None
    solid = mesh if mesh.is_watertight else mesh.convex_hull
    if solid.volume < 0:  # inward-facing winding: same solid, flipped sign
        solid = solid.copy()
        solid.invert()
    if not solid.volume > 0:
        raise ValueError("the mesh encloses no volume")
    # trimesh integrates with density 1, so moment_inertia / mass is the tensor per kilogram.
    return np.asarray(solid.center_mass, dtype=np.float64), np.asarray(solid.moment_inertia) / float(solid.mass)


InertiaFunction = Callable[..., tuple[np.ndarray, np.ndarray]]

INERTIA: dict[str, InertiaFunction] = {
    "sphere": _sphere,
    "box": _box,
    "cylinder": _cylinder,
    "capsule": _capsule,
    "mesh": _mesh,
}


def body_mass(obj: spec.ObjectSpec) -> float:
    """Mass in kg: ``physics.mass``, else ``density`` (or ``spec.DEFAULT_DENSITY``) x ``geometry.shape_volume``."""
    phys = obj.physics
    if phys.mass is not None:
        return float(phys.mass)
    density = phys.density if phys.density is not None else spec.DEFAULT_DENSITY
    return float(density) * float(geometry.shape_volume(obj.shape))


def _principal(tensor: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Eigen-decomposition of a symmetric inertia tensor into moments and a right-handed rotation."""
    tensor = 0.5 * (tensor + tensor.T)
    moments, axes = np.linalg.eigh(tensor)  # columns of `axes` are the principal directions
    if np.linalg.det(axes) < 0:
        axes[:, 2] = -axes[:, 2]
    return np.maximum(moments, 0.0), matrix_to_quat(axes)


def mass_properties(obj: spec.ObjectSpec, mesh: Optional[trimesh.Trimesh] = None) -> MassProperties:
    """Mass properties of a dynamic object; `mesh` is its ``geometry.build_mesh`` for mesh shapes."""
    kind = obj.shape.type
    if kind not in INERTIA:
        raise BodyBuildError(f"object {obj.name!r}: a {kind} cannot be a dynamic body (make it `body: static`)")
    try:
        com, per_kg = INERTIA[kind](obj.shape, mesh)
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
        moments, quat = _principal(per_kg)
    return MassProperties(mass_kg=mass, com=com, principal_moments=moments * mass, principal_quat=quat)
