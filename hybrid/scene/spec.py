"""The validated, immutable scene specification (what exists and how it starts).

Every model here is frozen and forbids unknown keys, so a typo in a YAML file is an
error with a suggestion rather than a silently ignored setting. Units are SI
(metres, kilograms, seconds); fields that take degrees say so in their name
(``fov_deg``, ``rotation_deg``). The world frame is right-handed with z up.

This module only describes data. Loading YAML with located errors lives in
``hybrid.scene.load``; building a simulation from a spec lives in ``hybrid.world``.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic_core import PydanticCustomError



def _not_bool(value: object) -> object:
    """Refuse true/false where a number belongs: pydantic's lax mode would read `radius: true` as 1.0."""
    if isinstance(value, bool):
        # The error's type is not one the loader words specially, so the message it
        # writes is "expected <what this field takes>, got true".
        raise PydanticCustomError("bool_for_number", "expected a number, got a boolean")
    return value


# Every number in a scene or recipe goes through these two types (a test checks that no
# bare float or int is left in the models), so a boolean never passes as 1 or 0.
Float = Annotated[float, BeforeValidator(_not_bool)]
Int = Annotated[int, BeforeValidator(_not_bool)]

Vec2 = tuple[Float, Float]
Vec3 = tuple[Float, Float, Float]
Quat = tuple[Float, Float, Float, Float]  # (x, y, z, w), as pybullet


class SpecValueError(ValueError):
    """A failed check that names what to blame, so a loader can point at it in the file.

    Raise it like a ValueError from any validator. ``at`` is a field path relative to
    the model being validated (a model validator blaming one of its fields, e.g.
    ``("physics", "timestep")``); empty blames the value or model being validated.
    ``suggestion`` is the value the author most likely meant.
    """

    def __init__(self, message: str, at: tuple[Union[str, int], ...] = (), suggestion: Optional[str] = None):
        super().__init__(message)
        self.at = tuple(at)
        self.suggestion = suggestion


# A small palette so scene authors can write `color: red`.
NAMED_COLORS: dict[str, Vec3] = {
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "gray": (0.5, 0.5, 0.5),
    "grey": (0.5, 0.5, 0.5),
    "lightgray": (0.8, 0.8, 0.8),
    "darkgray": (0.25, 0.25, 0.25),
    "red": (0.86, 0.12, 0.12),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.12, 0.3, 0.86),
    "yellow": (0.95, 0.85, 0.15),
    "orange": (0.95, 0.5, 0.1),
    "purple": (0.55, 0.2, 0.75),
    "cyan": (0.1, 0.75, 0.85),
    "magenta": (0.85, 0.15, 0.65),
    "brown": (0.45, 0.28, 0.14),
    "wood": (0.62, 0.42, 0.24),
    "sand": (0.82, 0.72, 0.52),
    "grass": (0.3, 0.55, 0.2),
    "steel": (0.7, 0.72, 0.75),
    "gold": (1.0, 0.77, 0.34),
}


def _parse_color(value: object) -> Vec3:
    """Accept [r, g, b] in 0..1, '#rrggbb' or a name from NAMED_COLORS."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("#") and len(text) == 7:
            try:
                return tuple(int(text[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
            except ValueError:
                pass
        if text in NAMED_COLORS:
            return NAMED_COLORS[text]
        close = difflib.get_close_matches(text, sorted(NAMED_COLORS), n=1)
        raise SpecValueError(
            f"unknown colour {value!r}: use [r, g, b] with components in 0..1, "
            f"'#rrggbb', or one of {', '.join(sorted(NAMED_COLORS))}",
            suggestion=close[0] if close else None,
        )
    if isinstance(value, (list, tuple)) and len(value) == 3:
        if any(isinstance(c, bool) for c in value):
            from hybrid.scene.errors import show_value

            raise ValueError(f"a colour [r, g, b] needs three numbers in 0..1, got {show_value(list(value))}")
        try:
            rgb = tuple(float(c) for c in value)
        except (TypeError, ValueError):
            raise ValueError("a colour [r, g, b] needs three numbers in 0..1") from None
        if any(not 0.0 <= c <= 1.0 for c in rgb):
            raise ValueError(
                f"colour components must lie in 0..1, got {list(rgb)} "
                "(for 0..255 values divide by 255, or write '#rrggbb')"
            )
        return rgb  # type: ignore[return-value]
    raise ValueError("a colour is [r, g, b] in 0..1, '#rrggbb', or a colour name")


class Spec(BaseModel):
    """Base for every spec model: frozen, unknown keys are errors."""

    # allow_inf_nan=False: an infinite or NaN number in a scene is always a mistake
    # (inf mass, NaN position) and would only surface later as a physics blow-up.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Positive = Annotated[Float, Field(gt=0)]
NonNegative = Annotated[Float, Field(ge=0)]
Unit = Annotated[Float, Field(ge=0, le=1)]
# The JSON Schema of a colour lists every accepted spelling, so editors that check a
# scene against `hybrid schema` accept `color: red` and '#rrggbb' as the loader does.
Color = Annotated[
    Vec3,
    BeforeValidator(_parse_color),
    WithJsonSchema(
        {
            "description": "[r, g, b] in 0..1, '#rrggbb' or a name",
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "number", "minimum": 0, "maximum": 1},
                    "minItems": 3,
                    "maxItems": 3,
                },
                {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                {"type": "string", "enum": sorted(NAMED_COLORS)},
            ],
        }
    ),
]


def _unit_quat(q: Quat) -> Quat:
    n = math.sqrt(sum(c * c for c in q))
    if n < 1e-9:
        raise ValueError("quaternion (x, y, z, w) must not be all zeros")
    return tuple(c / n for c in q)  # type: ignore[return-value]


# A quaternion (x, y, z, w) as written, normalised on load.
UnitQuat = Annotated[Quat, AfterValidator(_unit_quat)]


def _one_rotation(model: BaseModel) -> None:
    """Models with `rotation_deg` and `quaternion` accept one of them at most."""
    if model.rotation_deg is not None and model.quaternion is not None:  # type: ignore[attr-defined]
        raise SpecValueError("give either rotation_deg or quaternion, not both", at=("quaternion",))


# ---------------------------------------------------------------- shapes


class SphereShape(Spec):
    type: Literal["sphere"]
    radius: Positive


class BoxShape(Spec):
    type: Literal["box"]
    size: tuple[Positive, Positive, Positive] = Field(description="full extents along x, y, z in metres")


class CylinderShape(Spec):
    type: Literal["cylinder"]
    radius: Positive
    length: Positive = Field(description="along the local z axis, metres")


class CapsuleShape(Spec):
    type: Literal["capsule"]
    radius: Positive
    length: Positive = Field(description="length of the straight part along local z, excluding the caps")


class PlaneShape(Spec):
    """An infinite plane z = 0 in the object's frame; `size` is how much of it is drawn."""

    type: Literal["plane"]
    size: tuple[Positive, Positive] = (20.0, 20.0)
    texture_scale: Positive = Field(1.0, description="texture repeats per metre")


class MeshShape(Spec):
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


class TerrainGenerator(Spec):
    """A procedural height map in metres, sampled on the heightfield grid.

    valley: a smooth trough along y, z = depth * (1 - cos(2 pi x / size_x)) / 2 shape.
    hills: a sum of smooth bumps placed from the scene seed.
    noise: fractal value noise from the scene seed.
    """

    type: Literal["valley", "hills", "noise", "flat"]
    amplitude: NonNegative = Field(1.0, description="height range in metres")
    frequency: Positive = Field(1.0, description="features per side (hills, noise) or troughs across x (valley)")
    octaves: Annotated[Int, Field(ge=1, le=8)] = 4


class HeightfieldShape(Spec):
    """Terrain: a grid of heights over `size` metres, from a file (.png/.npy), inline `heights`, or a `generator`."""

    type: Literal["heightfield"]
    size: tuple[Positive, Positive] = Field(description="extent along x and y in metres")
    resolution: tuple[Annotated[Int, Field(ge=2, le=1024)], Annotated[Int, Field(ge=2, le=1024)]] = (64, 64)
    file: Optional[str] = None
    heights: Optional[list[list[Float]]] = None
    generator: Optional[TerrainGenerator] = None
    height_scale: Positive = Field(1.0, description="multiplies heights (a PNG's 0..1 values)")
    texture_scale: Positive = Field(1.0, description="texture repeats per metre")

    @model_validator(mode="after")
    def _one_source(self) -> "HeightfieldShape":
        given = [k for k in ("file", "heights", "generator") if getattr(self, k) is not None]
        if len(given) != 1:
            raise SpecValueError(
                "a heightfield needs exactly one of `file`, `heights` or `generator`"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.heights is not None:
            rows = len(self.heights)
            cols = {len(r) for r in self.heights}
            if rows < 2 or len(cols) != 1 or cols.pop() < 2:
                raise SpecValueError("`heights` must be a rectangular list of rows, at least 2 x 2", at=("heights",))
        return self


Shape = Annotated[
    Union[SphereShape, BoxShape, CylinderShape, CapsuleShape, PlaneShape, MeshShape, HeightfieldShape],
    Field(discriminator="type"),
]

SHAPE_TYPES = ("sphere", "box", "cylinder", "capsule", "plane", "mesh", "heightfield")


# ---------------------------------------------------------------- physics


class Keyframe(Spec):
    """A kinematic body's pose at time `t` (simulation seconds). Poses are interpolated between keyframes."""

    t: NonNegative
    position: Vec3
    rotation_deg: Optional[Vec3] = None
    quaternion: Optional[UnitQuat] = None


    @model_validator(mode="after")
    def _rotation(self) -> "Keyframe":
        _one_rotation(self)
        return self


class BodyPhysics(Spec):
    """How an object moves. Between two bodies pybullet multiplies restitutions and frictions.

    A kinematic body with keyframes holds its first keyframe's pose until that
    keyframe (its `position` is then unused); a keyframe without a rotation keeps
    the object's own rotation. `gravity_scale` acts on dynamic bodies only.
    `linear_velocity` is the velocity of the object's own origin (its shape frame).
    """

    body: Literal["dynamic", "static", "kinematic"] = "dynamic"
    mass: Optional[Positive] = Field(None, description="kg; give mass or density, not both")
    density: Optional[Positive] = Field(None, description="kg/m^3; mass = density x volume")
    friction: NonNegative = 0.5
    rolling_friction: NonNegative = 0.0
    spinning_friction: NonNegative = 0.0
    restitution: Unit = 0.0
    linear_damping: NonNegative = 0.0
    angular_damping: NonNegative = 0.0
    linear_velocity: Vec3 = (0.0, 0.0, 0.0)
    angular_velocity: Vec3 = Field((0.0, 0.0, 0.0), description="rad/s in world axes")
    gravity_scale: Float = Field(1.0, description="multiplies gravity for this body only (0 floats, -1 falls up)")
    keyframes: Optional[list[Keyframe]] = Field(None, description="kinematic bodies only, sorted by t")

    @model_validator(mode="after")
    def _consistent(self) -> "BodyPhysics":
        if self.mass is not None and self.density is not None:
            raise SpecValueError("give `mass` or `density`, not both", at=("density",))
        if self.keyframes is not None:
            if self.body != "kinematic":
                raise SpecValueError("`keyframes` only apply to `body: kinematic`", at=("keyframes",))
            if len(self.keyframes) < 1:
                raise SpecValueError("`keyframes` needs at least one keyframe", at=("keyframes",))
            times = [k.t for k in self.keyframes]
            if any(b <= a for a, b in zip(times, times[1:])):
                raise SpecValueError(f"keyframe times must increase strictly, got {times}", at=("keyframes",))
        return self


DEFAULT_DENSITY = 1000.0  # kg/m^3 when neither mass nor density is given


# ---------------------------------------------------------------- look


class Look(Spec):
    color: Color = (0.7, 0.7, 0.7)
    texture: Optional[str] = Field(None, description="image file (png/jpg) relative to the scene file, multiplied by color")
    metallic: Unit = 0.0
    roughness: Unit = 0.6



# ---------------------------------------------------------------- objects


class ObjectSpec(Spec):
    name: str = Field(min_length=1, description="stable, unique name used in metadata and instance ids")
    shape: Shape
    position: Vec3 = (0.0, 0.0, 0.0)
    rotation_deg: Optional[Vec3] = Field(None, description="extrinsic x-y-z Euler angles in degrees")
    quaternion: Optional[UnitQuat] = Field(None, description="(x, y, z, w)")
    physics: BodyPhysics = BodyPhysics()
    look: Look = Look()


    @model_validator(mode="after")
    def _consistent(self) -> "ObjectSpec":
        _one_rotation(self)
        kind = self.shape.type
        if kind in ("plane", "heightfield") and self.physics.body != "static":
            raise SpecValueError(
                f"a {kind} can only be `body: static` (got {self.physics.body})", at=("physics", "body")
            )
        return self


# ---------------------------------------------------------------- camera


class CameraKeyframe(Spec):
    t: NonNegative = Field(description="video seconds")
    position: Vec3
    look_at: Vec3


class Camera(Spec):
    """The camera. `motion` picks how it moves:

    static: fixed at `position`, looking at `look_at` (or along `quaternion`, OpenCV axes).
    path: through `keyframes` (video seconds), positions and targets interpolated smoothly.
    orbit: around `look_at` at `orbit_radius` and `orbit_height`, `orbit_deg_per_s` degrees per video second.
    """

    motion: Literal["static", "path", "orbit"] = "static"
    position: Vec3 = (4.0, -4.0, 3.0)
    look_at: Vec3 = (0.0, 0.0, 0.5)
    quaternion: Optional[UnitQuat] = Field(
        None, description="camera-to-world rotation (x, y, z, w) in OpenCV axes; replaces look_at for static cameras"
    )
    up: Vec3 = (0.0, 0.0, 1.0)
    fov_deg: Annotated[Float, Field(gt=1, lt=170)] = 45.0
    near: Positive = 0.05
    far: Positive = 100.0
    keyframes: Optional[list[CameraKeyframe]] = None
    orbit_radius: Optional[Positive] = None
    orbit_height: Optional[Float] = None
    orbit_start_deg: Float = 0.0
    orbit_deg_per_s: Float = 30.0


    @model_validator(mode="after")
    def _consistent(self) -> "Camera":
        if self.near >= self.far:
            raise SpecValueError(f"near ({self.near}) must be smaller than far ({self.far})", at=("near",))
        if self.motion == "path":
            if not self.keyframes or len(self.keyframes) < 2:
                given = len(self.keyframes) if self.keyframes else 0
                raise SpecValueError(
                    f"`motion: path` needs `keyframes` with at least two entries (got {given})", at=("keyframes",)
                )
            times = [k.t for k in self.keyframes]
            if any(b <= a for a, b in zip(times, times[1:])):
                raise SpecValueError(f"camera keyframe times must increase strictly, got {times}", at=("keyframes",))
        elif self.keyframes is not None:
            raise SpecValueError("`keyframes` only apply to `motion: path`", at=("keyframes",))
        if self.motion != "static" and self.quaternion is not None:
            raise SpecValueError(
                "`quaternion` only applies to a static camera; moving cameras aim at `look_at`", at=("quaternion",)
            )
        # A camera at the point it looks at has no view direction.
        if self.motion == "static" and self.quaternion is None and _same_point(self.position, self.look_at):
            raise SpecValueError(
                f"the camera's `look_at` equals its `position` {list(self.position)}, so it looks nowhere; "
                "move `look_at` to the point the camera should aim at",
                at=("look_at",),
            )
        if self.motion == "path":
            for i, key in enumerate(self.keyframes or []):
                if _same_point(key.position, key.look_at):
                    raise SpecValueError(
                        f"this keyframe's `look_at` equals its `position` {list(key.position)}, so the camera "
                        "looks nowhere there; aim it at another point",
                        at=("keyframes", i, "look_at"),
                    )
        if self.motion == "orbit":
            dx, dy, dz = (a - b for a, b in zip(self.position, self.look_at))
            radius = self.orbit_radius if self.orbit_radius is not None else math.hypot(dx, dy)
            height = self.orbit_height if self.orbit_height is not None else dz
            if radius <= 1e-12 and abs(height) <= 1e-12:
                raise SpecValueError(
                    "the orbit has radius 0 and height 0 (`position` equals `look_at`), so the camera sits on the "
                    "point it looks at; set `orbit_radius` or `orbit_height`, or move `position`",
                    at=("position",),
                )
        return self


def _same_point(a: Vec3, b: Vec3) -> bool:
    """Closer than look_at_cam_to_world can take a direction from (hybrid.transforms)."""
    return math.dist(a, b) < 1e-9


# ---------------------------------------------------------------- lights


class AmbientLight(Spec):
    type: Literal["ambient"]
    color: Color = (1.0, 1.0, 1.0)
    intensity: NonNegative = 0.3



class DirectionalLight(Spec):
    type: Literal["directional"]
    direction: Vec3 = Field((-0.4, 0.3, -1.0), description="direction the light travels, world axes")
    color: Color = (1.0, 1.0, 1.0)
    intensity: NonNegative = Field(3.0, description="lux-like units, as pyrender")
    shadows: bool = True
    angular_diameter_deg: Annotated[Float, Field(ge=0, le=30)] = Field(
        0.0,
        description="apparent size of the light (the sun is 0.53); above 0 shadows get soft edges, "
        "a penumbra of about occluder height x this angle, by averaging shadow_samples renders",
    )
    shadow_samples: Annotated[Int, Field(ge=2, le=64)] = Field(
        8, description="renders averaged for soft shadows when angular_diameter_deg > 0 (each costs one rgb pass)"
    )

    @field_validator("direction")
    @classmethod
    def _has_direction(cls, v: Vec3) -> Vec3:
        if math.hypot(*v) < 1e-9:
            raise SpecValueError("a directional light needs a non-zero `direction` (the way its light travels)")
        return v


class PointLight(Spec):
    type: Literal["point"]
    position: Vec3
    color: Color = (1.0, 1.0, 1.0)
    intensity: NonNegative = Field(20.0, description="candela-like units, as pyrender")
    shadows: bool = Field(False, description="not supported for point lights (the rasteriser has no cube shadow maps)")


    @field_validator("shadows")
    @classmethod
    def _no_shadows(cls, v: bool) -> bool:
        if v:
            raise SpecValueError(
                "point lights cannot cast shadows in the rasteriser; use a `spot` light aimed at the scene "
                "(or a `directional` one) for shadows, or set `shadows: false`"
            )
        return v


class SpotLight(Spec):
    type: Literal["spot"]
    position: Vec3
    look_at: Vec3 = (0.0, 0.0, 0.0)
    color: Color = (1.0, 1.0, 1.0)
    intensity: NonNegative = 40.0
    inner_cone_deg: Annotated[Float, Field(ge=0, lt=90)] = 15.0
    outer_cone_deg: Annotated[Float, Field(gt=0, le=89)] = 30.0
    shadows: bool = True


    @model_validator(mode="after")
    def _cones(self) -> "SpotLight":
        if _same_point(self.position, self.look_at):
            raise SpecValueError(
                f"the spot light's `look_at` equals its `position` {list(self.position)}, so it points nowhere; "
                "aim it at another point",
                at=("look_at",),
            )
        if self.inner_cone_deg >= self.outer_cone_deg:
            raise SpecValueError(
                f"inner_cone_deg ({self.inner_cone_deg}) must be smaller than outer_cone_deg ({self.outer_cone_deg})",
                at=("inner_cone_deg",),
            )
        return self


Light = Annotated[Union[AmbientLight, DirectionalLight, PointLight, SpotLight], Field(discriminator="type")]


# ---------------------------------------------------------------- physics settings


class PhysicsSettings(Spec):
    gravity: Vec3 = (0.0, 0.0, -9.81)
    timestep: Optional[Positive] = Field(
        None,
        description="seconds of simulated time per pybullet step; default: the frame's simulated time "
        "split into equal steps of at most 1/240 s",
    )
    substeps: Annotated[Int, Field(ge=1, le=64)] = Field(1, description="pybullet numSubSteps inside each step")
    solver_iterations: Annotated[Int, Field(ge=1, le=1000)] = Field(
        50, description="constraint solver iterations per step; more steadies tall stacks"
    )
    record_contacts: bool = Field(
        True,
        description="read contact points after every step for the per-frame contact events in metadata; "
        "off saves about a third of the stepping time in contact-heavy scenes",
    )
    max_speed: Positive = Field(
        500.0, description="m/s; a body faster than this means the simulation blew up and stops with an error"
    )
    resolve_overlaps: bool = Field(
        False,
        description="move objects that start inside each other apart before the first frame (only translating "
        "dynamic bodies, keeping their velocities) instead of refusing the scene",
    )


# ---------------------------------------------------------------- the scene


# The `fields:` section lives in its own module; it builds on the types above.
from hybrid.scene.fields_spec import FieldsSpec  # noqa: E402

MAX_LIGHTS_PER_TYPE = 4  # pyrender's limit per light type; more would be dropped silently


class Scene(Spec):
    """A whole scene: the root of a YAML scene file."""

    name: str = Field(min_length=1)
    seed: Annotated[Int, Field(ge=0, lt=2**32)] = 0
    fps: Annotated[Float, Field(gt=0, le=1000)] = 24.0
    duration: Optional[Positive] = Field(None, description="video seconds; give duration or frames")
    frames: Optional[Annotated[Int, Field(ge=1)]] = Field(None, description="frame count; give duration or frames")
    resolution: tuple[Annotated[Int, Field(ge=8, le=8192)], Annotated[Int, Field(ge=8, le=8192)]] = Field(
        (320, 240), description="width, height in pixels"
    )
    time_scale: Positive = Field(
        1.0, description="simulated seconds per video second; 0.25 is 4x slow motion"
    )
    background: Color = (0.62, 0.72, 0.85)
    physics: PhysicsSettings = PhysicsSettings()
    camera: Camera = Camera()
    lights: list[Light] = Field(
        default_factory=lambda: [AmbientLight(type="ambient"), DirectionalLight(type="directional")]
    )
    objects: list[ObjectSpec] = Field(default_factory=list)
    fields: Optional[FieldsSpec] = Field(
        None, description="smoke, fire and liquid simulated with Taichi, coupled with the bodies (see hybrid.fields)"
    )


    @model_validator(mode="after")
    def _consistent(self) -> "Scene":
        if self.duration is not None and self.frames is not None:
            raise SpecValueError("give `duration` or `frames`, not both", at=("frames",))
        for kind in ("directional", "point", "spot"):
            idx = [i for i, light in enumerate(self.lights) if light.type == kind]
            if len(idx) > MAX_LIGHTS_PER_TYPE:
                raise SpecValueError(
                    f"{len(idx)} {kind} lights: the rasteriser draws at most {MAX_LIGHTS_PER_TYPE} of each type; "
                    f"remove some, or turn them into another type",
                    at=("lights", idx[MAX_LIGHTS_PER_TYPE]),
                )
        seen: dict[str, int] = {}
        for i, obj in enumerate(self.objects):
            if obj.name in seen:
                raise SpecValueError(
                    f"object name {obj.name!r} is used twice (objects[{seen[obj.name]}] and objects[{i}]); names must be unique",
                    at=("objects", i, "name"),
                )
            seen[obj.name] = i
        if self.physics.timestep is not None:
            steps = self.frame_dt_sim / self.physics.timestep
            if abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or round(steps) < 1:
                good = self.frame_dt_sim / max(1, round(steps))
                raise SpecValueError(
                    f"physics.timestep {self.physics.timestep:.6g} s must divide the simulated time per frame "
                    f"(time_scale / fps = {self.frame_dt_sim:.6g} s); try timestep: {good:.10g}",
                    at=("physics", "timestep"),
                )
        return self

    # Derived quantities: computed here once so every stage agrees on them.

    @property
    def frame_count(self) -> int:
        if self.frames is not None:
            return self.frames
        if self.duration is not None:
            return max(1, int(round(self.duration * self.fps)))
        return int(round(2.0 * self.fps))  # two seconds by default

    @property
    def frame_dt_sim(self) -> float:
        """Simulated seconds between two frames."""
        return self.time_scale / self.fps

    @property
    def steps_per_frame(self) -> int:
        """pybullet steps per frame."""
        if self.physics.timestep is None:
            return max(1, math.ceil(self.frame_dt_sim * 240.0 - 1e-9))
        return int(round(self.frame_dt_sim / self.physics.timestep))

    @property
    def physics_dt(self) -> float:
        """Seconds of simulated time per pybullet step."""
        return self.frame_dt_sim / self.steps_per_frame

    @property
    def width(self) -> int:
        return self.resolution[0]

    @property
    def height(self) -> int:
        return self.resolution[1]
