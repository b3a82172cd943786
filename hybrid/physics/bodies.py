"""One pybullet body per scene object: collision shape, mass properties, material, initial motion.

Kinds. Dynamic and static objects become plain Bullet rigid bodies; a kinematic
object becomes a fixed-base multibody of mass 0 that the world moves every step
(the only mass-0 body whose velocity Bullet's contact solver uses).

Frames. Every pose we report is the object's shape frame, the frame
``geometry.build_mesh`` uses. pybullet works in a body's inertial frame (centre of
mass, principal axes of inertia). For primitives the two coincide. A mesh whose
centre of mass is off its origin, or whose principal axes are turned (an off-centre
or lopsided mesh), is handed to pybullet with its triangles moved into the inertial
frame; ``Body.com_local`` and ``Body.inertial_quat`` let the world convert back.

Mass. We set the exact principal moments (``hybrid.physics.mass``). pybullet starts
using them from the second step on (it refreshes a rigid body's world-frame inertia
when the body moves), so during the very first step a capsule or mesh that is
already spinning or touching something turns with pybullet's own estimate.

Margins. pybullet pads shapes built from triangles with a 1 mm collision margin; we
remove it, so a convex mesh rests exactly on its rendered surface. The parts of a
convex decomposition keep theirs (a compound's parts cannot be changed), well inside
the fit of the decomposition itself (a few millimetres for a 20 cm object).

Material. ``changeDynamics`` sets every coefficient from the spec explicitly
(pybullet would otherwise damp linear and angular velocity by 0.04 per second).
When two bodies touch, Bullet combines their coefficients per contact as:

- restitution: e = e_a * e_b (a ball with 0.8 on a floor with 1.0 bounces with 0.8;
  on the default floor restitution 0 it does not bounce at all);
- sliding friction: mu = mu_a * mu_b (two surfaces of 0.5 slide with 0.25);
- rolling and spinning friction: mu_r = r_a * mu_b + r_b * mu_a (each body's rolling
  coefficient scaled by the other's sliding friction).

Bullet clamps the combined friction to at most 10. Restitution acts only above a
closing speed of about 0.2 m/s (pybullet's restitution velocity threshold), so
resting contacts do not jitter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from hybrid.physics.pybullet_quiet import pybullet as p

from hybrid import geometry
from hybrid.physics import mass as massmod
from hybrid.physics.errors import BodyBuildError
from hybrid.physics.kinematic import KinematicTrack
from hybrid.physics.shapes import collision_shape
from hybrid.scene import spec
from hybrid.transforms import pose_matrix, quat_multiply, quat_to_matrix, rotation_quat

IDENTITY_QUAT = (0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Body:
    """A scene object as it lives in one pybullet client.

    ``body_id``: pybullet's id. ``kind``: dynamic | static | kinematic.
    ``mass_kg``: 0 for static and kinematic bodies. ``com_local`` (3,) metres and
    ``inertial_quat`` (x, y, z, w): the inertial frame in the shape frame (zero and
    identity unless the centre of mass or the principal axes are off the shape's).
    ``convex_parts``: convex hulls in a mesh's collision shape (1 = its convex hull,
    more = a decomposition, 0 = analytic or concave shape). ``track``: the
    prescribed motion of a kinematic body.
    """

    index: int
    name: str
    body_id: int
    kind: str
    mass_kg: float
    com_local: np.ndarray
    inertial_quat: tuple[float, float, float, float]
    gravity_scale: float
    convex_parts: int
    collision_source: str
    track: Optional[KinematicTrack] = None
    # Principal moments of inertia (kg m^2) as pybullet holds them; zeros for static and kinematic bodies.
    moments: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def has_offset(self) -> bool:
        """Whether pybullet's inertial frame differs from the shape frame."""
        return bool(np.any(self.com_local != 0.0)) or self.inertial_quat != IDENTITY_QUAT


def _load_mesh(obj: spec.ObjectSpec, seed: int):
    """The object's triangles from ``geometry.build_mesh``, with file errors named after the object."""
    source = getattr(obj.shape, "file", None)
    try:
        return geometry.build_mesh(obj.shape, seed)
    except FileNotFoundError:
        raise BodyBuildError(
            f"object {obj.name!r}: file {source} not found; check the path (relative to the scene file)"
        ) from None
    except Exception as err:  # trimesh, numpy and imageio raise many types for a corrupt file
        what = f"file {source}" if source else f"its {obj.shape.type}"
        raise BodyBuildError(
            f"object {obj.name!r}: cannot build its shape from {what} ({type(err).__name__}: {err}); "
            f"{obj.shape.build_hint}"
        ) from None


def apply_material(client: int, body_id: int, phys: spec.BodyPhysics) -> None:
    """Set every contact and damping coefficient from the spec (see the module docstring for how pairs combine)."""
    p.changeDynamics(
        body_id,
        -1,
        lateralFriction=phys.friction,
        rollingFriction=phys.rolling_friction,
        spinningFriction=phys.spinning_friction,
        restitution=phys.restitution,
        linearDamping=phys.linear_damping,
        angularDamping=phys.angular_damping,
        # Solve a contact only once the surfaces touch. Bullet otherwise also solves
        # "speculative" contacts up to 2 cm apart, and a bounce solved early loses most
        # of its restitution (a ball with e = 0.8 barely bounces at small timesteps).
        contactProcessingThreshold=0.0,
        physicsClientId=client,
    )


def create_body(client: int, obj: spec.ObjectSpec, index: int, seed: int, step_dt: float) -> Body:
    """Build `obj` (scene index `index`) in pybullet client `client`.

    `seed` drives procedural shapes; `step_dt` (seconds) is the pybullet step, used to
    give a kinematic body its velocity over the first step.
    """
    kind = obj.physics.body
    mesh = _load_mesh(obj, seed) if obj.shape.collides_as_mesh else None
    position = np.asarray(obj.position, dtype=np.float64)
    quat = rotation_quat(obj.rotation_deg, obj.quaternion)
    track = KinematicTrack.from_spec(obj) if kind == "kinematic" else None
    if track is not None:
        position, quat = track.pose(0.0)

    com, inertial_quat, mass_kg = np.zeros(3), IDENTITY_QUAT, 0.0
    body_position, body_quat = position, quat
    if kind == "dynamic":
        props = massmod.mass_properties(obj, mesh)
        com, inertial_quat, mass_kg = props.com, props.principal_quat, props.mass_kg
        if mesh is not None and (np.any(com != 0.0) or inertial_quat != IDENTITY_QUAT):
            # Give pybullet the body in its inertial frame (triangles moved there) rather
            # than an inertial offset: with an offset it wraps the shape in a compound,
            # whose 1 mm collision margin can no longer be removed.
            to_inertial = np.linalg.inv(pose_matrix(com, inertial_quat))
            mesh = mesh.copy()
            mesh.apply_transform(to_inertial)
            body_position = position + quat_to_matrix(quat) @ com
            body_quat = quat_multiply(quat, inertial_quat)
    shape = collision_shape(client, obj, mesh)
    body_id = p.createMultiBody(
        baseMass=mass_kg,
        baseCollisionShapeIndex=shape.shape_id,
        baseVisualShapeIndex=-1,
        basePosition=[float(c) for c in body_position],
        baseOrientation=[float(c) for c in body_quat],
        # Dynamic and static bodies are plain rigid bodies: faster than Featherstone
        # bodies and the only kind whose contacts use split impulses (exact restitution).
        # A kinematic body must be a fixed-base multibody: only then does the contact
        # solver see the velocity we give it, so it pushes, drags and bats things.
        useMaximalCoordinates=kind != "kinematic",
        physicsClientId=client,
    )
    if body_id < 0:
        raise BodyBuildError(f"object {obj.name!r}: pybullet could not create the body")
    apply_material(client, body_id, obj.physics)
    if shape.source in ("convex-hull", "decomposition", "concave-mesh"):
        # pybullet pads triangle-built shapes with a 1 mm margin; without it they touch
        # exactly where the rendered surface is (primitives carry their margin inside).
        p.changeDynamics(body_id, -1, collisionMargin=0.0, physicsClientId=client)
    if kind == "dynamic":
        # pybullet's own inertia is a bounding-box estimate for offset frames, capsules and
        # meshes. `mass` must come along: alone, the inertia update corrupts a rigid body's mass.
        p.changeDynamics(
            body_id,
            -1,
            mass=mass_kg,
            localInertiaDiagonal=props.principal_moments.tolist(),
            # A sleeping body would ignore a kinematic body or a scaled gravity that should move it.
            activationState=p.ACTIVATION_STATE_DISABLE_SLEEPING,
            physicsClientId=client,
        )
        # The spec's linear velocity is the shape origin's; pybullet wants the centre of mass's.
        omega = np.asarray(obj.physics.angular_velocity, dtype=np.float64)
        v_com = np.asarray(obj.physics.linear_velocity, dtype=np.float64) + np.cross(omega, quat_to_matrix(quat) @ com)
        p.resetBaseVelocity(body_id, v_com.tolist(), omega.tolist(), physicsClientId=client)
    elif track is not None:
        lin, ang = track.velocity(0.0, step_dt)
        p.resetBaseVelocity(body_id, lin.tolist(), ang.tolist(), physicsClientId=client)

    return Body(
        index=index,
        name=obj.name,
        body_id=body_id,
        kind=kind,
        mass_kg=mass_kg,
        com_local=np.asarray(com, dtype=np.float64),
        inertial_quat=tuple(float(c) for c in inertial_quat),  # type: ignore[arg-type]
        gravity_scale=float(obj.physics.gravity_scale) if kind == "dynamic" else 1.0,
        convex_parts=shape.convex_parts,
        collision_source=shape.source,
        track=track,
        moments=np.asarray(props.principal_moments, dtype=np.float64) if kind == "dynamic" else np.zeros(3),
    )
