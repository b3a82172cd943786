"""Dataset recipes: distributions over scenes, read from YAML with located errors.

A recipe (``datasets/*.yaml``) says what a dataset's clips have in common and what
varies between them; ``hybrid.data.sampler.sample_scene`` turns (recipe, seed,
index) into one concrete ``Scene``. Models here are frozen and forbid unknown keys,
like the scene models, and a bad recipe fails at load with the same located
``file:line:column: path: message`` lines as a bad scene.

Every varying quantity is a *distribution* (``hybrid.data.distributions``): a
constant, ``{uniform: [lo, hi]}``, ``{normal: [mean, std], clip: [lo, hi]}``,
``{choice: [...], weights: [...]}`` or ``{randint: [lo, hi]}``. Units are the
scene's: metres, kilograms, seconds; keys ending in ``_deg`` are degrees. Colours
are sRGB as in scenes, or a colour distribution (``{palette: [...]}``, ``{hsv: [h, s, v]}``).

Objects are drawn from the shapes that give a recipe option (``hybrid.shapes``:
sphere, box, cylinder, capsule, mesh). Smoke, fire and liquid are the ``fields:``
key (``FieldsRecipe``): a scene's ``fields.gas`` or ``fields.liquid`` section, present
in a given fraction of the clips. A recipe's ``post`` chain is carried by every
scene it draws (``Scene.post``).
"""

from __future__ import annotations

import difflib
import os
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator

from hybrid.data.distributions import (
    ColorChoice,
    Constant,
    Distribution,
    ElevationNumber,
    NonNegativeNumber,
    Number,
    Number3,
    PositiveNumber,
    RecipeSpec,
    UnitNumber,
    bounded,
)
from hybrid.data.textures import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, TEXTURES, texture_params
from hybrid.render.cycles.options import BeautySpec, beauty_spec
from hybrid.render.post.spec import PostChain
from hybrid.scene import spec
from hybrid.scene.errors import SceneError
from hybrid.scene.fields_spec import Arch, GasSpec, LiquidSpec
from hybrid.scene.limits import MAX_OBJECTS
from hybrid.shapes import SHAPE_OPTIONS
from hybrid.spec.errors import Issue, SourceMap, models_in, show_value
from hybrid.spec.load import parse_yaml, read_source, validate_located
from hybrid.spec.types import AxisBox, Color, Float, Int, NonNegative, Positive, SpecValueError, Unit, Vec2, Vec3

RECIPE_HELP_LINE = (
    "recipe fields are described in hybrid/data/recipe.py; datasets/movi_a.yaml is a complete example"
)


class RecipeError(SceneError):
    """A recipe that cannot be used, with every located problem in ``issues``.

    A ``SceneError``, so anything that reports scene errors reports these too.
    """

    help_line = RECIPE_HELP_LINE




# ---------------------------------------------------------------- textures


def _named(field: str):
    """List items may be a bare name: `wood` means {<field>: wood}."""

    def convert(value: object) -> object:
        return {field: value} if isinstance(value, str) else value

    return BeforeValidator(convert)


TextureKind = Literal[tuple(TEXTURES)]  # type: ignore[valid-type]


class TextureOption(RecipeSpec):
    """One procedural texture kind, its relative weight and fixed parameters (see hybrid.data.textures)."""

    kind: TextureKind
    weight: Positive = 1.0
    params: dict[str, Union[Float, Color]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "TextureOption":
        accepted = {k: v for k, v in texture_params(self.kind).items() if k != "size"}
        for name, value in self.params.items():
            if name not in accepted:
                close = difflib.get_close_matches(name, list(accepted), n=1)
                raise SpecValueError(
                    f"texture kind {self.kind!r} has no parameter `{name}`; it takes {', '.join(accepted)} "
                    "(the image size is `size` next to `kinds`)",
                    at=("params", name),
                    suggestion=close[0] if close else None,
                )
            wants_colour = isinstance(accepted[name], tuple)
            if wants_colour != isinstance(value, tuple):
                raise SpecValueError(
                    f"`{name}` is {'a colour' if wants_colour else 'a number'} (default {show_value(accepted[name])})",
                    at=("params", name),
                )
        return self


class TextureDist(RecipeSpec):
    """Procedural textures applied with some probability.

    `variants` bounds how many different images each kind gives (texture seeds
    0..variants-1), which bounds the texture cache however many clips are made.
    """

    probability: Unit = 1.0
    kinds: tuple[Annotated[TextureOption, _named("kind")], ...] = Field(min_length=1)
    variants: Annotated[Int, Field(ge=1, le=1_000_000)] = 16
    size: Annotated[Int, Field(ge=MIN_SIZE, le=MAX_SIZE)] = Field(DEFAULT_SIZE, description="pixels per side")
    tint: bool = Field(False, description="multiply the texture by the sampled colour (else white)")


# ---------------------------------------------------------------- materials


# Physical and visual presets. rubber and metal are Kubric's CLEVR materials
# (challenges/movi/movi_ab_worker.py: friction, restitution, roughness, metallic, and
# densities 1.1 and 2.7 relative to water); `default` equals the scene defaults.
_OPAQUE = {"transmission": 0.0, "ior": 1.5}
MATERIAL_PRESETS: dict[str, dict[str, float]] = {
    "default": {"metallic": 0.0, "roughness": 0.6, "friction": 0.5, "restitution": 0.0, "density": 1000.0, **_OPAQUE},
    "rubber": {"metallic": 0.0, "roughness": 0.7, "friction": 0.8, "restitution": 0.7, "density": 1100.0, **_OPAQUE},
    "metal": {"metallic": 1.0, "roughness": 0.2, "friction": 0.4, "restitution": 0.3, "density": 2700.0, **_OPAQUE},
    "plastic": {"metallic": 0.0, "roughness": 0.4, "friction": 0.5, "restitution": 0.5, "density": 1000.0, **_OPAQUE},
    "wood": {"metallic": 0.0, "roughness": 0.75, "friction": 0.6, "restitution": 0.35, "density": 650.0, **_OPAQUE},
    # Soda-lime glass: clear (refracts in the path tracer, fades to its reflections in the rasteriser).
    "glass": {"metallic": 0.0, "roughness": 0.02, "friction": 0.4, "restitution": 0.2, "density": 2500.0,
              "transmission": 1.0, "ior": 1.5},
}

MaterialPreset = Literal[tuple(MATERIAL_PRESETS)]  # type: ignore[valid-type]


class MaterialOption(RecipeSpec):
    """A material: a preset (or `default`), with any of its values replaced by distributions."""

    preset: MaterialPreset = "default"
    weight: Positive = 1.0
    metallic: Optional[UnitNumber] = None
    roughness: Optional[UnitNumber] = None
    friction: Optional[NonNegativeNumber] = None
    restitution: Optional[UnitNumber] = None
    density: Optional[PositiveNumber] = Field(None, description="kg/m^3")
    transmission: Optional[UnitNumber] = Field(None, description="0 opaque .. 1 clear (see the scene look)")
    ior: Optional[Annotated[Number, bounded(ge=1.0, le=4.0)]] = Field(None, description="index of refraction")

    def value(self, name: str) -> Distribution:
        """The distribution of `name` (a key of the MATERIAL_PRESETS entries)."""
        given = getattr(self, name)
        return given if given is not None else Constant(constant=MATERIAL_PRESETS[self.preset][name])


# ---------------------------------------------------------------- shapes


def shape_option_annotation() -> object:
    """One recipe shape option of any registered shape that has one, told apart by `type`;
    a bare name (`sphere`) is that shape with its defaults."""
    return SHAPE_OPTIONS.annotation(_named("type"))


ShapeOption = shape_option_annotation()


# ---------------------------------------------------------------- placement and motion of objects


class Region(AxisBox, RecipeSpec):
    """An axis-aligned box in world coordinates, metres."""

    @model_validator(mode="after")
    def _check(self) -> "Region":
        self._check_axes(
            lambda lo, hi: lo > hi,
            lambda axis, lo, hi: SpecValueError(
                f"region min {'xyz'[axis]} ({lo:g}) is above max {'xyz'[axis]} ({hi:g})", at=("min", axis)
            ),
        )
        return self


class Placement(RecipeSpec):
    """Where objects start.

    Centres are drawn uniformly in `region`; a draw is rejected (and redrawn, up to
    `max_attempts` times) when the object's bounding sphere would overlap another's
    (with `gap` metres to spare), when the object would reach below the floor, or,
    with `in_view`, when its bounding sphere is not wholly inside the first frame's
    view. `on_floor` sets each centre's height so the object rests on the floor.
    `rotation`: none, yaw (about z), or free (uniform over all orientations).
    """

    region: Region = {"min": (-1.0, -1.0, 0.0), "max": (1.0, 1.0, 1.0)}
    rotation: Literal["none", "yaw", "free"] = "yaw"
    on_floor: bool = False
    in_view: bool = True
    gap: NonNegative = Field(0.0, description="metres between bounding spheres")
    max_attempts: Annotated[Int, Field(ge=1, le=100_000)] = 500


class Throw(RecipeSpec):
    """Initial velocities. With `probability`, an object gets `velocity` (m/s, world
    axes) plus `pull` (1/s) times its horizontal offset to `pull_to` (so throws aim
    towards it), and a spin of `spin` rad/s about a uniformly random axis."""

    probability: Unit = 1.0
    velocity: Number3 = (0.0, 0.0, 0.0)
    pull: NonNegative = Field(0.0, description="1/s")
    pull_to: Vec2 = (0.0, 0.0)
    spin: NonNegativeNumber = Field(0.0, description="rad/s")


class BreakableDist(RecipeSpec):
    """Objects that break (the scene's `physics.breakable`): with `probability` an object breaks
    like a preset drawn from `presets` (equal odds), into `pieces` fragments (the preset's when not
    given), at the preset's threshold times `threshold_scale`, with a drawn fracture seed.

    A clip that draws a liquid keeps its objects whole (a scene cannot have both yet: the
    liquid's explicit coupling with the smallest fragments goes unstable); the draws are made
    all the same, so the rest of the clip does not change with the liquid's."""

    probability: Unit = 0.5
    presets: tuple[Literal["glass", "ceramic", "wood", "concrete", "ice"], ...] = Field(("glass", "ceramic"), min_length=1)
    pieces: Optional[Annotated[Number, bounded(ge=2, le=256, whole=True)]] = None
    threshold_scale: PositiveNumber = 1.0


class FlammableDist(RecipeSpec):
    """Objects that burn (the scene's `physics.flammable`): with `probability` an object burns like a
    preset drawn from `presets` (equal odds), and with `lit` of those the scene lights it at a time
    drawn from `lit_at` (seconds), else only the clip's fire (its heat) can.

    Only clips that draw fire (`fields.fire`: a gas with combustion) keep their flammable objects,
    and only objects inside its domain and not drawn breakable (a scene cannot have both on one
    object yet); in a clip that also draws a liquid they keep their shape when consumed
    (`collapse: 0`). The draws are made all the same, so the rest of the clip does not change."""

    probability: Unit = 0.5
    presets: tuple[Literal["paper", "dry_wood", "cloth", "fuel_soaked"], ...] = Field(("dry_wood", "paper"), min_length=1)
    lit: Unit = 0.5
    lit_at: NonNegativeNumber = 0.0


class ObjectsSpec(RecipeSpec):
    """The dynamic objects of each clip."""

    count: Annotated[Number, bounded(ge=0, le=MAX_OBJECTS - 1, whole=True)]
    shapes: tuple[ShapeOption, ...] = Field(min_length=1)
    size: Optional[PositiveNumber] = Field(
        None, description="metres; what it measures depends on the shape (see its option); shapes may set their own"
    )
    materials: tuple[Annotated[MaterialOption, _named("preset")], ...] = Field(
        default_factory=lambda: ("default",), min_length=1
    )
    color: ColorChoice = "lightgray"
    textures: Optional[TextureDist] = None
    mass: Optional[PositiveNumber] = Field(None, description="kg; replaces the material's density")
    placement: Placement = {}
    throw: Optional[Throw] = None
    breakable: Optional[BreakableDist] = None
    flammable: Optional[FlammableDist] = None

    @model_validator(mode="after")
    def _sized(self) -> "ObjectsSpec":
        if self.size is None:
            for i, option in enumerate(self.shapes):
                if option.size is None:
                    raise SpecValueError(
                        "this shape has no `size` and objects.size is not given; give one of them",
                        at=("shapes", i),
                    )
        return self


# ---------------------------------------------------------------- floor, camera, lights


class FloorSpec(RecipeSpec):
    """A static plane at z = 0 (always the first object, `floor`, instance id 1)."""

    size: tuple[Positive, Positive] = Field((40.0, 40.0), description="drawn extent in metres")
    color: ColorChoice = "gray"
    texture: Optional[TextureDist] = None
    texture_scale: PositiveNumber = Field(0.5, description="texture repeats per metre")
    metallic: UnitNumber = 0.0
    roughness: UnitNumber = 0.9
    friction: NonNegativeNumber = 0.5
    restitution: UnitNumber = 0.0


class MotionOption(RecipeSpec):
    """One camera motion, `type` (a Literal in each kind), and its relative weight among the options."""

    type: str
    weight: Positive = 1.0


class StaticMotion(MotionOption):
    type: Literal["static"]


class OrbitMotion(MotionOption):
    """Circle around the look-at point at the sampled distance and elevation, starting at the sampled azimuth."""

    type: Literal["orbit"]
    deg_per_s: Number = Field(20.0, description="degrees per video second; negative turns clockwise seen from above")


class LinearMotion(MotionOption):
    """A straight move in a uniformly random horizontal direction, still aiming at the look-at point."""

    type: Literal["linear"]
    speed: NonNegativeNumber = Field(0.5, description="m per video second")


Motion = Annotated[Union[StaticMotion, OrbitMotion, LinearMotion], Field(discriminator="type"), _named("type")]


def _motion_list(value: object) -> object:
    """`motion: orbit` or one mapping is a list of one."""
    return [value] if isinstance(value, (str, dict)) else value


class CameraDist(RecipeSpec):
    """The camera on a sphere around `look_at`: `distance` (m), `elevation_deg` above the
    horizontal, `azimuth_deg` from +x towards +y; then one of `motion` by weight."""

    look_at: Number3 = (0.0, 0.0, 0.0)
    distance: PositiveNumber = 8.0
    elevation_deg: ElevationNumber = 30.0
    azimuth_deg: Number = {"uniform": [0.0, 360.0]}
    fov_deg: Annotated[Number, bounded(gt=1, lt=170)] = Field(45.0, description="vertical field of view")
    near: Positive = 0.05
    far: Positive = 100.0
    motion: Annotated[tuple[Motion, ...], BeforeValidator(_motion_list)] = Field(("static",), min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "CameraDist":
        if self.near >= self.far:
            raise SpecValueError(f"near ({self.near}) must be smaller than far ({self.far})", at=("near",))
        return self


class AmbientDist(RecipeSpec):
    intensity: NonNegativeNumber = 0.3
    color: ColorChoice = "white"


def _scene_bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    """The ge/gt/le/lt bounds of a scene field, so a recipe accepts exactly what the scene will."""
    bounds = {}
    for item in model.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt"):
            if getattr(item, key, None) is not None:
                bounds[key] = getattr(item, key)
    return bounds


AngularDiameterNumber = Annotated[Number, bounded(**_scene_bounds(spec.DirectionalLight, "angular_diameter_deg"))]
ShadowSamples = Annotated[Int, Field(**_scene_bounds(spec.DirectionalLight, "shadow_samples"))]


class SoftShadowed(RecipeSpec):
    """A directional light whose `angular_diameter_deg` softens its shadows, which it must cast."""

    @model_validator(mode="after")
    def _soft_needs_shadows(self) -> "SoftShadowed":
        if not self.shadows and self.angular_diameter_deg.support()[1] > 0:  # type: ignore[attr-defined]
            raise SpecValueError(
                "angular_diameter_deg softens this light's shadows, but it has `shadows: false`; "
                "set `shadows: true`, or leave angular_diameter_deg at 0",
                at=("angular_diameter_deg",),
            )
        return self


class KeyLightDist(SoftShadowed):
    """A directional light arriving from `elevation_deg` above the horizon at `azimuth_deg`.

    `angular_diameter_deg` (degrees, drawn per clip; the sun is 0.53) is the light's
    apparent size; 0 gives hard shadows. Above 0 the shadow edges blur over a penumbra
    about occluder height x tan(angle) wide, made by averaging `shadow_samples` renders
    of the beauty pass per frame with the light tilted across its disc, so a clip whose
    draw is above 0 costs `shadow_samples` beauty passes per frame instead of one (the
    other buffers are unaffected). A scene uses the largest `shadow_samples` of its
    soft lights for all of them.
    """

    elevation_deg: ElevationNumber = 50.0
    azimuth_deg: Number = -45.0
    intensity: NonNegativeNumber = 3.0
    color: ColorChoice = "white"
    shadows: bool = True
    angular_diameter_deg: AngularDiameterNumber = 0.0
    shadow_samples: ShadowSamples = 8


class ExtraLightBase(RecipeSpec):
    """A light present with `probability`, placed by elevation and azimuth around the lights' centre."""

    probability: Unit = 1.0
    elevation_deg: ElevationNumber = 45.0
    azimuth_deg: Number = {"uniform": [0.0, 360.0]}
    intensity: NonNegativeNumber = 1.0
    color: ColorChoice = "white"
    type: str  # each kind's own Literal, which tells the kinds apart


class ExtraDirectional(ExtraLightBase, SoftShadowed):
    """A directional light; no shadows unless `shadows: true`, then hard or soft as for KeyLightDist."""

    type: Literal["directional"]
    shadows: bool = False
    angular_diameter_deg: AngularDiameterNumber = 0.0
    shadow_samples: ShadowSamples = 8


class DistantLight(ExtraLightBase):
    """A light placed `distance` metres from the centre."""

    distance: PositiveNumber = 4.0


class ExtraPoint(DistantLight):
    """A point light `distance` metres from the centre (pyrender: intensity in candela-like units)."""

    type: Literal["point"]


class ExtraSpot(DistantLight):
    """A spot light `distance` metres from the centre, aimed at it."""

    type: Literal["spot"]
    inner_cone_deg: spec.InnerConeDeg = 15.0
    outer_cone_deg: spec.OuterConeDeg = 30.0
    shadows: bool = True

    @model_validator(mode="after")
    def _cones(self) -> "ExtraSpot":
        spec.check_cones(self)
        return self


ExtraLight = Annotated[Union[ExtraDirectional, ExtraPoint, ExtraSpot], Field(discriminator="type")]


class LightsSpec(RecipeSpec):
    """Ambient light, a key light (`key: null` for none) and optional extra lights.

    Angles are around `center`; with `relative_to_camera` every azimuth is added to
    the camera's, so "key light from the camera's left" holds whatever the view.
    """

    center: Vec3 = (0.0, 0.0, 0.0)
    relative_to_camera: bool = False
    ambient: AmbientDist = {}
    key: Optional[KeyLightDist] = {}
    extra: tuple[ExtraLight, ...] = Field(default_factory=tuple)

    @model_validator(mode="after")
    def _check(self) -> "LightsSpec":
        for kind in ("directional", "point", "spot"):
            count = int(kind == "directional" and self.key is not None)
            for i, light in enumerate(self.extra):
                if light.type == kind:
                    count += 1
                    if count > spec.MAX_LIGHTS_PER_TYPE:
                        raise SpecValueError(
                            f"more than {spec.MAX_LIGHTS_PER_TYPE} {kind} lights (the key light counts as one "
                            "directional light): the rasteriser draws at most that many of each type",
                            at=("extra", i),
                        )
        return self


class SkyDist(RecipeSpec):
    """A sky environment (the scene's ``environment: {type: sky}``) drawn per clip, in some clips.

    Colours and numbers take distributions; a clip without a sky keeps the recipe's
    `background` and its ambient light alone.
    """

    probability: Unit = 1.0
    zenith: ColorChoice = "#5c8cd9"
    horizon: ColorChoice = "#c7d9eb"
    ground: ColorChoice = "#665e54"
    sharpness: Annotated[Number, bounded(ge=1, le=64)] = 3.0
    strength: NonNegativeNumber = 1.0
    visible: bool = Field(True, description="camera rays that miss see the sky (else `background`)")


# ---------------------------------------------------------------- the recipe


class ClipSpec(RecipeSpec):
    """Video settings shared by every clip of the dataset."""

    frames: Annotated[Int, Field(ge=1)] = 24
    fps: Annotated[Float, Field(gt=0, le=1000)] = 12.0
    resolution: tuple[Annotated[Int, Field(ge=8, le=8192)], Annotated[Int, Field(ge=8, le=8192)]] = Field(
        (256, 256), description="width, height in pixels"
    )
    time_scale: Positive = Field(1.0, description="simulated seconds per video second")


# ---------------------------------------------------------------- fields


class GasOption(RecipeSpec):
    """Smoke or fire in a fraction of the clips: a scene's `fields.gas` section, with
    every emitter moved to a point drawn uniformly in `emitter_region` (when given)."""

    probability: Unit
    gas: GasSpec
    emitter_region: Optional[Region] = None


class LiquidOption(RecipeSpec):
    """Liquid in a fraction of the clips: a scene's `fields.liquid` section; with
    `level`, every box fill reaches up to that height (metres, drawn per clip)."""

    probability: Unit
    liquid: LiquidSpec
    level: Optional[PositiveNumber] = None


class FieldsRecipe(RecipeSpec):
    """Smoke, fire and liquid around the tossed objects (see the scene's `fields:`).

    Per clip, one uniform draw picks fire (probability `fire.probability`), else smoke
    (the next `smoke.probability`), else no gas; liquid is drawn independently.
    """

    arch: Arch = "auto"
    deterministic: bool = True
    coupling: Literal["two_way", "one_way"] = "two_way"
    smoke: Optional[GasOption] = None
    fire: Optional[GasOption] = None
    liquid: Optional[LiquidOption] = None

    @model_validator(mode="after")
    def _probabilities(self) -> "FieldsRecipe":
        total = sum(o.probability for o in (self.smoke, self.fire) if o is not None)
        if total > 1.0 + 1e-9:
            raise SpecValueError(
                f"smoke and fire share one gas solver per clip: their probabilities add up to {total:g}, more than 1",
                at=("smoke", "probability"),
            )
        if self.fire is not None and self.fire.gas.combustion is None:
            raise SpecValueError(
                "`fire` needs a gas with a `combustion:` section and emitters that add fuel", at=("fire", "gas")
            )
        return self


class Recipe(RecipeSpec):
    """A dataset recipe: the root of a `datasets/*.yaml` file."""

    name: str = Field(min_length=1)
    description: str = ""
    clip: ClipSpec = {}
    physics: spec.PhysicsSettings = Field(default_factory=spec.PhysicsSettings, description="passed to every scene")
    background: ColorChoice = Field("#9fb8d6", description="sky colour behind everything")
    floor: FloorSpec = {}
    environment: Optional[SkyDist] = Field(
        None, description="a sky around the scene in some clips: light from every direction and the backdrop"
    )
    camera: CameraDist = {}
    lights: LightsSpec = {}
    objects: ObjectsSpec
    post: Optional[PostChain] = Field(
        None,
        description="game-engine post effects on the beauty frame, in order (see hybrid.render.post); "
        "buffers are never touched",
    )
    fields: Optional[FieldsRecipe] = Field(
        None, description="smoke, fire and liquid in some clips; their clips get the field buffers"
    )
    beauty: Optional[Annotated[BeautySpec, BeforeValidator(beauty_spec)]] = Field(
        None,
        description="what draws rgb: raster (default) or cycles, e.g. {type: cycles, samples: 64, denoise: true}; "
        "with cycles every clip also holds the raster beauty as rgb_raster",
    )

    @property
    def path_traced(self) -> bool:
        return self.beauty is not None and self.beauty.type == "cycles"

    @model_validator(mode="after")
    def _fits_a_scene(self) -> "Recipe":
        # The physics settings must suit the clip timing (a timestep dividing the frame
        # time); check it here so the error points at the recipe, not at a sampled scene.
        probe = {
            "name": self.name,
            "fps": self.clip.fps,
            "frames": self.clip.frames,
            "time_scale": self.clip.time_scale,
            "physics": self.physics,
        }
        try:
            spec.Scene.model_validate(probe)
        except ValidationError as e:
            err = e.errors()[0]
            error = (err.get("ctx") or {}).get("error")
            at = tuple(err["loc"]) + tuple(getattr(error, "at", ()))
            raise SpecValueError(err["msg"].removeprefix("Value error, "), at=at) from None
        return self

    @property
    def max_objects(self) -> int:
        """The most dynamic objects a clip can have."""
        return int(self.objects.count.support()[1])


# ---------------------------------------------------------------- loading


def load_recipe(path: Union[str, os.PathLike]) -> Recipe:
    """Load and validate the recipe at ``path``; raise ``RecipeError`` with every problem found.

    Mesh files in the recipe are resolved against the recipe file's folder and
    checked to exist and to be readable meshes.
    """
    filename = os.fspath(path)
    text = read_source(filename, "recipe", RecipeError)
    return load_recipe_text(text, filename)


def load_recipe_text(text: str, filename: str, base_dir: Optional[Union[str, os.PathLike]] = None) -> Recipe:
    """Validate recipe YAML given as text. ``filename`` is used in messages; relative
    mesh paths resolve against ``base_dir`` (default: the folder of ``filename``)."""
    base = os.path.abspath(os.fspath(base_dir)) if base_dir is not None else os.path.dirname(os.path.abspath(filename))
    data, source = parse_yaml(text, filename, RecipeError)
    return validate_located(Recipe, data, source, _resolve_paths(data, source, base), RecipeError)


def _resolve_paths(data: dict, source: SourceMap, base_dir: str) -> list[Issue]:
    """Make shape options' file paths absolute (in place); report missing, unreadable or empty meshes."""
    issues: list[Issue] = []
    wanted = {SHAPE_OPTIONS[n]: SHAPE_OPTIONS[n].file_fields for n in SHAPE_OPTIONS if SHAPE_OPTIONS[n].file_fields}
    for path, model, mapping in list(models_in(data, Recipe)):
        for name in wanted.get(model, ()):
            value = mapping.get(name)
            if not isinstance(value, str) or not value.strip():
                continue  # validation words those errors
            resolved = os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))
            mapping[name] = resolved
            where = path + (name,)
            if os.path.isdir(resolved):
                issues.append(source.issue(where, f"{resolved} is a folder, not a mesh file"))
            elif not os.path.isfile(resolved):
                note = "" if os.path.isabs(os.path.expanduser(value)) else f" (relative paths start at the recipe's folder, {base_dir})"
                issues.append(source.issue(where, f"file not found: {resolved}{note}"))
            else:
                problem = model.check_file(name, resolved)
                if problem:
                    issues.append(source.issue(where, problem))
    return issues


# A shape registered after this module was built rebuilds the models that hold shape options.
SHAPE_OPTIONS.uses(ObjectsSpec, "shapes", lambda: tuple[shape_option_annotation(), ...], then=(Recipe,))
