"""The validated, immutable scene specification (what exists and how it starts).

Every model here is frozen and forbids unknown keys, so a typo in a YAML file is an
error with a suggestion rather than a silently ignored setting. Units are SI
(metres, kilograms, seconds); fields that take degrees say so in their name
(``fov_deg``, ``rotation_deg``). The world frame is right-handed with z up. Lists
are tuples, so a Scene cannot change after validation, however deep one reaches
(derive a new one with ``model_copy(update=...)``).

The value types and the base model come from ``hybrid.spec``; each shape is a model in
``hybrid.shapes``; the ``fields:`` section is ``hybrid.scene.fields_spec``; ``post``
is a post-effect chain (``hybrid.render.post.spec``).

This module only describes data. Loading YAML with located errors lives in
``hybrid.scene.load``; building a simulation from a spec lives in ``hybrid.world``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from hybrid.render.post.spec import PostChain
from hybrid.scene.fields_spec import FieldsSpec
from hybrid.shapes import SHAPES
from hybrid.spec.types import Color, Float, Int, NonNegative, Positive, Spec, SpecValueError, Unit, UnitQuat, Vec3


def _one_rotation(model: BaseModel) -> None:
    """Models with `rotation_deg` and `quaternion` accept one of them at most."""
    if model.rotation_deg is not None and model.quaternion is not None:  # type: ignore[attr-defined]
        raise SpecValueError("give either rotation_deg or quaternion, not both", at=("quaternion",))


# ---------------------------------------------------------------- shapes
#
# Every shape is a model in hybrid.shapes (one module each), registered by its `type`;
# an object's `shape` is whichever registered model its `type` names.


def shape_annotation() -> object:
    """The union of every registered shape, told apart by `type` (rebuilt when a shape registers late)."""
    return SHAPES.annotation()


Shape = shape_annotation()


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


# Defaults a `breakable.preset` sets; any key given in the block wins. Thresholds are
# the contact impulse (N s, summed over the body's contacts within 10 ms:
# hybrid.physics.breakables) that breaks the object, sized for household objects of
# 0.1 to 1 kg: a 0.15 kg wine glass dropped 30 cm onto stone takes about
# m v (1 + e) = 0.15 x 2.4 x 1.1 = 0.4 N s; a 0.7 kg plate dropped 1 m, 3.5 N s. A
# steady load counts as force x 10 ms from every side it is pressed (a plate under
# three others on a shelf: about 0.5 N s), so ceramic's 1.5 N s lets plates stack.
# `kick` is the share of the impact's energy J^2 / (2 m) that pushes the fragments
# apart (hybrid.physics.breaking); `grain_stretch` > 1 makes splinters along the
# object's longest axis.
BREAK_PRESETS: dict[str, dict[str, object]] = {
    "glass": {"threshold_Ns": 0.3, "pieces": 32, "pattern": "impact", "kick": 0.10},
    "ceramic": {"threshold_Ns": 1.5, "pieces": 16, "pattern": "impact", "kick": 0.05},
    "wood": {"threshold_Ns": 6.0, "pieces": 10, "pattern": "voronoi", "grain_stretch": 5.0, "kick": 0.02},
    "concrete": {"threshold_Ns": 20.0, "pieces": 24, "pattern": "voronoi", "kick": 0.02},
    "ice": {"threshold_Ns": 1.5, "pieces": 20, "pattern": "impact", "kick": 0.08, "rebreak": True},
}


class Breakable(Spec):
    """An object that breaks into persistent fragments when a contact impulse reaches `threshold_Ns`.

    `preset` fills every key not given (BREAK_PRESETS); without one, `threshold_Ns` and
    `pieces` are required. The fragments are Voronoi cells of the object
    (hybrid.physics.fracture): `pattern: voronoi` spreads them evenly, `impact` makes
    them small near the point of impact. `seed` picks the cells; `rebreak` lets
    fragments break again (into `pieces` // 4, at least 2, with the same threshold).
    """

    preset: Optional[Literal["glass", "ceramic", "wood", "concrete", "ice"]] = None
    threshold_Ns: Optional[Positive] = Field(
        None, description="contact impulse within 10 ms that breaks it (N s); threshold / 10 ms is the steady force it bears"
    )
    pieces: Optional[Annotated[Int, Field(ge=2, le=256)]] = Field(None, description="number of fragments")
    pattern: Optional[Literal["voronoi", "impact"]] = None
    seed: Int = 0
    kick: Optional[Annotated[Float, Field(ge=0.0, le=1.0)]] = Field(
        None, description="share of the impact's energy J^2 / (2 m) that pushes the fragments apart"
    )
    grain_stretch: Optional[Annotated[Float, Field(ge=1.0, le=20.0)]] = Field(
        None, description="cells this many times longer along the object's longest axis (wood)"
    )
    rebreak: Optional[bool] = None

    @model_validator(mode="after")
    def _complete(self) -> "Breakable":
        if self.preset is None:
            for key in ("threshold_Ns", "pieces"):
                if getattr(self, key) is None:
                    raise SpecValueError(
                        f"`breakable` needs `{key}` or a `preset` ({', '.join(BREAK_PRESETS)})", at=(key,)
                    )
        return self

    def resolved(self) -> dict[str, object]:
        """Every setting, from the block, then the preset, then the plain defaults."""
        out: dict[str, object] = {"pattern": "voronoi", "kick": 0.0, "grain_stretch": 1.0, "rebreak": False}
        out.update(BREAK_PRESETS.get(self.preset or "", {}))
        out.update({k: v for k, v in self.model_dump().items() if v is not None and k != "preset"})
        return out


# Defaults a `flammable.preset` sets; any key given in the block wins. Ignition
# temperatures are kelvin above ambient (paper autoignites near 230 C, wood near
# 300 C, cloth near 260 C, a hydrocarbon-soaked rag at its fuel's flash and fire
# point, far lower); burn rates are the mass a burning surface loses per square metre
# and second (cone calorimeter ranges: wood 8-15 g, paper and cloth several times
# that); heat_release is the heat of combustion of the burnt mass (J/kg); spread_speed
# the speed of the flame front along the surface (wood about 1 mm/s sideways, paper
# 1 to 4 cm/s, soaked cloth tens of cm/s); ash_fraction the share of the mass left
# when it has burnt through; critical_flux the radiant heat flux (W/m^2) below which
# the surface does not ignite however long it is exposed, with a flame nearby (piloted:
# wood about 12 kW/m^2, thin paper and cotton about 10, a surface wet with a volatile
# fuel far less).
BURN_PRESETS: dict[str, dict[str, object]] = {
    "paper": {
        "ignition_temperature": 210.0, "ignition_time": 0.3, "burn_rate": 0.06, "heat_release": 1.6e7,
        "spread_speed": 0.02, "char_color": (0.05, 0.045, 0.04), "ash_fraction": 0.05, "critical_flux": 1.0e4,
    },
    "dry_wood": {
        "ignition_temperature": 280.0, "ignition_time": 1.0, "burn_rate": 0.012, "heat_release": 1.7e7,
        "spread_speed": 0.002, "char_color": (0.04, 0.035, 0.03), "ash_fraction": 0.02, "critical_flux": 1.2e4,
    },
    "cloth": {
        "ignition_temperature": 240.0, "ignition_time": 0.5, "burn_rate": 0.03, "heat_release": 1.8e7,
        "spread_speed": 0.015, "char_color": (0.06, 0.05, 0.045), "ash_fraction": 0.05, "critical_flux": 1.0e4,
    },
    "fuel_soaked": {
        "ignition_temperature": 120.0, "ignition_time": 0.1, "burn_rate": 0.04, "heat_release": 4.0e7,
        "spread_speed": 0.2, "char_color": (0.05, 0.045, 0.04), "ash_fraction": 0.03, "critical_flux": 5.0e3,
    },
}


class Ignite(Spec):
    """The scene lights the object at time `t`: every point of its surface within `radius` of `point`
    (object frame) starts burning, or the surface point nearest `point` when `radius` is 0."""

    t: NonNegative = Field(0.0, description="simulated seconds")
    point: Vec3 = Field((0.0, 0.0, 0.0), description="object frame, metres")
    radius: NonNegative = Field(0.0, description="metres")


class Flammable(Spec):
    """An object that ignites, burns and chars (hybrid.fields.burning).

    The gas temperature next to a point of its surface ignites that point once it has
    stayed above `ignition_temperature` for `ignition_time`; the flame front also runs
    along the surface at `spread_speed`. A burning point loses `burn_rate` kg per square
    metre and second as fuel vapour into the gas, where it burns by
    ``fields.gas.combustion`` and releases `heat_release` J per kg; the point chars as
    it burns and goes out when its share of the burnable mass (all but `ash_fraction`)
    is gone. The flames' radiant heat ignites it too, where it exceeds `critical_flux`
    for `ignition_time`. `preset` fills every key not given (BURN_PRESETS); without one,
    every key but `char_color`, `ash_fraction`, `critical_flux` (default wood's 12 kW/m^2)
    and `ignite` is required.
    """

    preset: Optional[Literal["paper", "dry_wood", "cloth", "fuel_soaked"]] = None
    ignition_temperature: Optional[Positive] = Field(None, description="kelvin above ambient, of the gas at the surface")
    ignition_time: Optional[NonNegative] = Field(None, description="seconds above the ignition temperature before it ignites")
    burn_rate: Optional[Positive] = Field(None, description="kg lost per m^2 of burning surface per second")
    heat_release: Optional[Positive] = Field(None, description="J per kg burnt")
    spread_speed: Optional[NonNegative] = Field(None, description="m/s: the flame front along the surface")
    critical_flux: Optional[Positive] = Field(
        None, description="W/m^2 of the flames' radiant heat above which the surface ignites (as the temperature)"
    )
    char_color: Optional[Color] = Field(None, description="the colour of fully charred surface")
    ash_fraction: Optional[Annotated[Float, Field(ge=0.0, lt=1.0)]] = Field(
        None, description="share of the mass left when it has burnt through"
    )
    consumed_fraction: Annotated[Float, Field(gt=0.0, le=1.0)] = Field(
        0.9, description="share of the burnable mass gone at which the object counts as consumed"
    )
    spacing: Positive = Field(0.01, description="metres between the points of its burn map")
    collapse: Annotated[Int, Field(ge=0, le=64)] = Field(
        8, description="when consumed it collapses into this many char fragments (0: it keeps its shape)"
    )
    ignite: Optional[Ignite] = Field(None, description="lit by the scene (the initial flame)")

    @model_validator(mode="after")
    def _complete(self) -> "Flammable":
        if self.preset is None:
            for key in ("ignition_temperature", "ignition_time", "burn_rate", "heat_release", "spread_speed"):
                if getattr(self, key) is None:
                    raise SpecValueError(
                        f"`flammable` needs `{key}` or a `preset` ({', '.join(BURN_PRESETS)})", at=(key,)
                    )
        return self

    def resolved(self) -> dict[str, object]:
        """Every setting, from the block, then the preset, then the plain defaults."""
        out: dict[str, object] = {"char_color": (0.05, 0.045, 0.04), "ash_fraction": 0.02, "critical_flux": 1.2e4}
        out.update(BURN_PRESETS.get(self.preset or "", {}))
        out.update({k: v for k, v in self.model_dump().items() if v is not None and k not in ("preset", "ignite")})
        out["ignite"] = self.ignite
        return out


COLLAPSE_THRESHOLD_NS = 1.0e30  # a consumed object's char fragments: no contact impulse breaks it


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
    keyframes: Optional[tuple[Keyframe, ...]] = Field(None, description="kinematic bodies only, sorted by t")
    breakable: Optional[Breakable] = Field(None, description="breaks into persistent fragments (hybrid.physics.fracture)")
    flammable: Optional[Flammable] = Field(None, description="ignites, burns and chars (hybrid.fields.burning)")

    def break_spec(self) -> Optional[Breakable]:
        """How the object breaks: its `breakable`, else, for a flammable object that collapses when
        consumed, char fragments that no blow breaks (only being consumed does: hybrid.fields.burning),
        else None."""
        if self.breakable is not None:
            return self.breakable
        burn = self.flammable
        if burn is not None and burn.collapse >= 2:
            return Breakable(
                threshold_Ns=COLLAPSE_THRESHOLD_NS, pieces=burn.collapse, pattern="voronoi", kick=0.0,
                grain_stretch=3.0 if burn.preset == "dry_wood" else 1.0,
            )
        return None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        # Objects that do not break or burn dump as they did before `breakable` and `flammable` existed.
        data = handler(self)
        for key in ("breakable", "flammable"):
            if getattr(self, key) is None:
                data.pop(key, None)
        return data

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
    """How a surface looks: a principled BSDF in Cycles, a metallic-roughness material in the rasteriser.

    `transmission`, `ior` and `emission` came later; a look that leaves them at their
    defaults dumps as looks did before them (clip metadata holds this dump).
    The rasteriser approximates a transmissive surface (it refracts nothing): its
    base colour fades by (1 - transmission), leaving the reflections of lights.
    """

    color: Color = (0.7, 0.7, 0.7)
    texture: Optional[str] = Field(None, description="image file (png/jpg) relative to the scene file, multiplied by color")
    metallic: Unit = 0.0
    roughness: Unit = 0.6
    transmission: Unit = Field(0.0, description="0 opaque .. 1 clear glass or water (refracts in the path tracer)")
    ior: Annotated[Float, Field(ge=1.0, le=4.0)] = Field(1.5, description="index of refraction (glass 1.5, water 1.33)")
    emission: Color = Field((0.0, 0.0, 0.0), description="emitted colour (display values)")
    emission_strength: NonNegative = Field(
        0.0, description="emitted radiance = decoded emission colour x this, in the units of the lights"
    )
    inner: Optional["Look"] = Field(
        None, description="the look of a breakable object's broken faces (default: this look without its texture)"
    )

    @model_validator(mode="after")
    def _inner_once(self) -> "Look":
        if self.inner is not None and self.inner.inner is not None:
            raise SpecValueError("an inner look has no inner look of its own", at=("inner", "inner"))
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        data = handler(self)
        for name in LATER_LOOK_FIELDS:
            if name in data and getattr(self, name) == Look.model_fields[name].default:
                data.pop(name)
        return data


LATER_LOOK_FIELDS = ("transmission", "ior", "emission", "emission_strength", "inner")



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
        burn = self.physics.flammable
        if burn is not None and burn.collapse >= 2 and (self.shape.static_only or self.physics.body == "kinematic"):
            what = f"a {self.shape.type} has no volume to" if self.shape.static_only else "a kinematic object cannot"
            raise SpecValueError(
                f"{what} collapse into char fragments when consumed; set `collapse: 0` in its `flammable` block",
                at=("physics", "flammable", "collapse"),
            )
        if self.shape.static_only and self.physics.body != "static":
            raise SpecValueError(
                f"a {self.shape.type} can only be `body: static` (got {self.physics.body})", at=("physics", "body")
            )
        if self.physics.breakable is not None:
            if self.physics.body == "kinematic":
                raise SpecValueError(
                    "a kinematic object cannot break (its motion is prescribed); make it `body: dynamic` or "
                    "`body: static`, or remove `breakable`",
                    at=("physics", "breakable"),
                )
            if self.shape.static_only:
                raise SpecValueError(
                    f"a {self.shape.type} has no volume to break into fragments; remove `breakable`, or use a box",
                    at=("physics", "breakable"),
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
    keyframes: Optional[tuple[CameraKeyframe, ...]] = None
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


# Spot light cones, degrees from the axis.
InnerConeDeg = Annotated[Float, Field(ge=0, lt=90)]
OuterConeDeg = Annotated[Float, Field(gt=0, le=89)]


class SpotLight(Spec):
    type: Literal["spot"]
    position: Vec3
    look_at: Vec3 = (0.0, 0.0, 0.0)
    color: Color = (1.0, 1.0, 1.0)
    intensity: NonNegative = 40.0
    inner_cone_deg: InnerConeDeg = 15.0
    outer_cone_deg: OuterConeDeg = 30.0
    shadows: bool = True


    @model_validator(mode="after")
    def _cones(self) -> "SpotLight":
        check_aimed(self, "spot light", "points")
        check_cones(self)
        return self


def check_aimed(light: BaseModel, noun: str, verb: str) -> None:
    """A light aimed from `position` at `look_at` needs the two apart."""
    position = light.position  # type: ignore[attr-defined]
    if _same_point(position, light.look_at):  # type: ignore[attr-defined]
        raise SpecValueError(
            f"the {noun}'s `look_at` equals its `position` {list(position)}, so it {verb} nowhere; "
            "aim it at another point",
            at=("look_at",),
        )


def check_cones(light: BaseModel) -> None:
    """A spot light's inner cone (full brightness) must be narrower than its outer one (dark beyond)."""
    inner, outer = light.inner_cone_deg, light.outer_cone_deg  # type: ignore[attr-defined]
    if inner >= outer:
        raise SpecValueError(
            f"inner_cone_deg ({inner}) must be smaller than outer_cone_deg ({outer})", at=("inner_cone_deg",)
        )


class AreaLight(Spec):
    """A glowing rectangle `size` metres across, facing `look_at`: soft shadows in the path tracer.

    `intensity` is the radiant intensity along its axis, in the units of point and spot
    lights (irradiance intensity / d^2 far away on the axis); it falls off as the cosine
    of the angle from the axis (a Lambertian emitter, one-sided). The rasteriser draws
    it as a spot light at its centre (cone 89 degrees, falling off as cos^2): the same
    light on the axis, hard shadows.
    """

    type: Literal["area"]
    position: Vec3
    look_at: Vec3 = (0.0, 0.0, 0.0)
    size: tuple[Positive, Positive] = Field((1.0, 1.0), description="width and height in metres")
    color: Color = (1.0, 1.0, 1.0)
    intensity: NonNegative = 40.0
    shadows: bool = True

    @model_validator(mode="after")
    def _aimed(self) -> "AreaLight":
        check_aimed(self, "area light", "faces")
        return self

    def as_spot(self) -> SpotLight:
        """The rasteriser's stand-in: a spot light at the centre with the same axis and intensity."""
        return SpotLight(
            type="spot", position=self.position, look_at=self.look_at, color=self.color, intensity=self.intensity,
            inner_cone_deg=0.0, outer_cone_deg=89.0, shadows=self.shadows,
        )


Light = Annotated[Union[AmbientLight, DirectionalLight, PointLight, SpotLight, AreaLight], Field(discriminator="type")]


# ---------------------------------------------------------------- environment


class SkyEnvironment(Spec):
    """A sky: a smooth gradient in elevation from `ground` (straight down) through `horizon` to `zenith`.

    With Z, H, G the three colours decoded to linear light (gamma 2.2, as every scene
    colour), d_z the up component of a unit direction and k = `sharpness`, the
    radiance seen along d is

        L(d) = strength * (H + (Z - H) * w(d_z))    for d_z >= 0
        L(d) = strength * (H + (G - H) * w(-d_z))   for d_z < 0,    w(t) = 1 - (1 - t)^k

    so the horizon colour holds at the horizon, k = 1 blends linearly in d_z, and a
    larger k keeps the horizon colour to a thinner band. It has no azimuth, so it has
    no rotation. (``hybrid.render.environment`` evaluates it for both back ends.)
    """

    type: Literal["sky"]
    zenith: Color = Field((0.36, 0.55, 0.85), description="colour straight up (display value)")
    horizon: Color = Field((0.78, 0.85, 0.92), description="colour at the horizon (display value)")
    ground: Color = Field((0.40, 0.37, 0.33), description="colour straight down (display value)")
    sharpness: Annotated[Float, Field(ge=1, le=64)] = Field(
        3.0, description="1 blends linearly in the direction's height; larger keeps the horizon colour to a thinner band"
    )
    strength: NonNegative = Field(1.0, description="multiplies the radiance (in the units of ambient lights)")
    visible: bool = Field(True, description="camera rays that miss every object see the sky; false: they see `background`")


ENVIRONMENT_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".hdr")


class ImageEnvironment(Spec):
    """An equirectangular (latitude-longitude) image around the scene, as a light and a backdrop.

    PNG and JPEG files hold sRGB-encoded texels (decoded with the sRGB curve, as
    textures); OpenEXR (.exr) and Radiance (.hdr) files hold linear radiance as it is.
    The radiance seen along a direction is `strength` x the image there. Convention
    (Blender's, so Cycles needs no extra turn): the image's centre column looks along
    +x, its top row straight up, and azimuth grows to the left across the image (from
    +x towards +y), so seen from inside the scene the picture is not mirrored;
    `rotation_deg` turns the image counterclockwise about +z seen from above. Any
    aspect ratio is taken (2:1 makes square texels).
    """

    type: Literal["image"]
    path: str = Field(description="equirectangular image file (png, jpg, exr, hdr) relative to the scene file")
    strength: NonNegative = Field(1.0, description="multiplies the image's radiance")
    rotation_deg: Float = Field(
        0.0, description="turns the image about world +z, counterclockwise seen from above (the image centre faces +x at 0)"
    )
    visible: bool = Field(True, description="camera rays that miss every object see the image; false: they see `background`")

    @classmethod
    def check_file(cls, field: str, path: str) -> Optional[str]:
        """Why the image at `path` cannot be an environment, or None (checked at load, so the error names the line)."""
        from hybrid.render.environment import environment_image_problem

        return environment_image_problem(path)


Environment = Annotated[Union[SkyEnvironment, ImageEnvironment], Field(discriminator="type")]


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
        "off saves about a fifth of the stepping time in contact-heavy scenes (19 % in BENCHMARKS.md)",
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
    background: Color = Field(
        (0.62, 0.72, 0.85), description="what camera rays that miss every object see (unless a visible environment)"
    )
    environment: Optional[Environment] = Field(
        None,
        description="light from all around (a sky gradient or an equirectangular image), added to the ambient "
        "lights; seen by camera rays that miss unless `visible: false`. Without `lights:` a scene with an "
        "environment gets the default directional light only (no ambient light)",
    )
    physics: PhysicsSettings = PhysicsSettings()
    camera: Camera = Camera()
    lights: tuple[Light, ...] = Field(
        default_factory=lambda: (AmbientLight(type="ambient"), DirectionalLight(type="directional"))
    )
    objects: tuple[ObjectSpec, ...] = Field(default_factory=tuple)
    fields: Optional[FieldsSpec] = Field(
        None, description="smoke, fire and liquid simulated with Taichi, coupled with the bodies (see hybrid.fields)"
    )
    post: Optional[PostChain] = Field(
        None,
        description="game-engine post effects on the beauty frame, in order (see hybrid.render.post); "
        "buffers are never touched",
    )


    @model_validator(mode="before")
    @classmethod
    def _environment_replaces_default_ambient(cls, data: object) -> object:
        # The environment is the scene's light from all around: a scene that names one and
        # no lights gets the default sun alone, not the default ambient light on top.
        if isinstance(data, dict) and data.get("environment") is not None and "lights" not in data:
            data = {**data, "lights": (DirectionalLight(type="directional"),)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "Scene":
        if self.duration is not None and self.frames is not None:
            raise SpecValueError("give `duration` or `frames`, not both", at=("frames",))
        fire = self.fire_light_count
        for kind in ("directional", "point", "spot"):
            # The rasteriser draws an area light as a spot light.
            idx = [i for i, light in enumerate(self.lights) if light.type == kind or (kind, light.type) == ("spot", "area")]
            if kind == "spot" and fire and len(idx) + fire > MAX_LIGHTS_PER_TYPE:
                raise SpecValueError(
                    f"{len(idx)} spot lights (area lights count as spot lights) and fields.gas.look.fire_lights "
                    f"{fire}: the rasteriser draws at most {MAX_LIGHTS_PER_TYPE} spot lights; lower "
                    "fields.gas.look.fire_lights or remove some spot lights",
                    at=("fields", "gas", "look", "fire_lights"),
                )
            if len(idx) > MAX_LIGHTS_PER_TYPE:
                raise SpecValueError(
                    f"{len(idx)} {kind} lights{' (area lights count as spot lights)' if kind == 'spot' else ''}: "
                    f"the rasteriser draws at most {MAX_LIGHTS_PER_TYPE} of each type; "
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
        collapsing = [i for i, obj in enumerate(self.objects) if obj.physics.breakable is None and obj.physics.break_spec() is not None]
        if collapsing and self.fields is not None and self.fields.liquid is not None:
            raise SpecValueError(
                "a flammable object that collapses into char fragments, in a scene with a liquid, is not supported "
                "yet (the liquid's coupling with small fragments goes unstable); set `collapse: 0` in its "
                "`flammable` block",
                at=("objects", collapsing[0], "physics", "flammable", "collapse"),
            )
        breakable = [i for i, obj in enumerate(self.objects) if obj.physics.breakable is not None]
        if breakable and self.fields is not None and self.fields.liquid is not None:
            raise SpecValueError(
                "breakable objects in a scene with a liquid are not supported yet: the smallest fragments are "
                "light enough that the liquid's explicit coupling with them goes unstable; remove `breakable` or "
                "the liquid (smoke and fire are fine)",
                at=("objects", breakable[0], "physics", "breakable"),
            )
        if breakable or collapsing:
            from hybrid.roster import Roster

            roster = Roster.from_scene(self)
            for k, name in enumerate(roster.names[len(self.objects):]):
                if name in seen:
                    raise SpecValueError(
                        f"object name {name!r} is also the name of a fragment of "
                        f"{roster.names[roster.root[len(self.objects) + k]]!r}; rename it (fragments are named "
                        "<object>#<k>)",
                        at=("objects", seen[name], "name"),
                    )
        self._check_flammable()
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

    def _check_flammable(self) -> None:
        """Burning objects need a gas to burn in (its combustion burns their fuel vapour)."""
        burning = [i for i, obj in enumerate(self.objects) if obj.physics.flammable is not None]
        if not burning:
            return
        at = ("objects", burning[0], "physics", "flammable")
        gas = None if self.fields is None else self.fields.gas
        if gas is None:
            raise SpecValueError(
                "a flammable object burns in the scene's gas, but the scene has no `fields.gas`; add one whose "
                "domain covers the object (with `combustion: {}`), or remove `flammable`",
                at=at,
            )
        if gas.combustion is None:
            raise SpecValueError(
                "a flammable object gives off fuel vapour that `fields.gas.combustion` burns, and the gas has no "
                "`combustion:` section; add `combustion: {}` to fields.gas",
                at=at,
            )
        if gas.combustion.heat <= 0:
            raise SpecValueError(
                "flammable objects release their heat through `fields.gas.combustion.heat` (kelvin per unit of fuel "
                "burnt), which is 0; give it a positive value (the default is 1500)",
                at=("fields", "gas", "combustion", "heat"),
            )
        both = [i for i in burning if self.objects[i].physics.breakable is not None]
        if both:
            i = both[0]
            raise SpecValueError(
                "an object cannot be both `breakable` and `flammable` yet (its burn map would not follow it into "
                "its fragments); remove one of them",
                at=("objects", i, "physics", "flammable"),
            )
        lo, hi = gas.domain.min, gas.domain.max
        for i in burning:
            pos = self.objects[i].position
            if any(not (lo[a] <= pos[a] <= hi[a]) for a in range(3)):
                raise SpecValueError(
                    f"flammable object {self.objects[i].name!r} starts at {tuple(pos)}, outside fields.gas.domain "
                    f"({tuple(lo)} to {tuple(hi)}): it could never burn there; move it or grow the domain",
                    at=("objects", i, "position"),
                )

    @property
    def fire_light_count(self) -> int:
        """Lights the rasteriser makes of the flames (``fields.gas.look.fire_lights`` with combustion, else 0)."""
        gas = None if self.fields is None else self.fields.gas
        if gas is None or gas.combustion is None:
            return 0
        return int(gas.look.fire_lights)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        # A scene without post effects dumps as scenes did before `post` existed: clip
        # metadata holds this dump, and its bytes must not change.
        data = handler(self)
        if self.post is None:
            data.pop("post", None)
        if self.environment is None:  # likewise for scenes without an environment
            data.pop("environment", None)
        return data

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


# A shape registered after this module was built rebuilds the models that hold shapes.
SHAPES.uses(ObjectSpec, "shape", shape_annotation, then=(Scene,))
