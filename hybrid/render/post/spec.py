"""Parameters of every post effect, as frozen pydantic models a recipe can list.

An effect in a recipe is a mapping with a ``type`` naming the effect and its
parameters, e.g. ``{type: bloom, threshold: 1.0, intensity: 0.4}``. ``EffectSpec`` is
the union of all of them, discriminated on ``type``; ``PostChain`` is a validated list
that also checks the order (see ``check_order``). Unknown keys are errors, as in scene
files, and errors are located (``[2].bloom.threshold``).

Each model says where in the chain it works (``space``):

- ``"scene"``: linear light, scene-referred, HDR (values may exceed 1), before tone
  mapping. ``tonemap`` is the last scene effect: it maps to display-linear 0..1.
- ``"display"``: sRGB-encoded display values 0..1, after tone mapping (film grain).

and which per-frame data it needs (``needs``: ``"depth"``, ``"K"``).

Units: linear light values are relative radiance (1 = a white surface under unit
light); distances in metres; angles in degrees where the name says ``_deg``; sizes in
pixels where it says ``_px``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional, Sequence, Union

from pydantic import Field, RootModel, ConfigDict, model_validator

from hybrid.spec.types import Float, Int, NonNegative, Positive, Spec, SpecValueError, Unit

Space = Literal["scene", "display"]


class PostSpec(Spec):
    """Base of every effect's parameters: frozen, unknown keys are errors."""

    space: ClassVar[Space] = "scene"
    needs: ClassVar[tuple[str, ...]] = ()


class Exposure(PostSpec):
    """Scale linear light by 2**ev (ev in photographic stops: +1 doubles every value)."""

    type: Literal["exposure"] = "exposure"
    ev: Annotated[Float, Field(ge=-24, le=24, description="exposure change in stops")] = 0.0


class ToneMap(PostSpec):
    """Map scene-linear HDR to display-linear 0..1, per channel; ends the scene-light part of a chain.

    ``aces``: Narkowicz's fit of the ACES filmic curve, (x(2.51x+0.03))/(x(2.43x+0.59)+0.14),
    clipped to 1 (reached at x ~ 7.2). ``reinhard``: x/(1+x), or with ``white`` the
    extended form x(1+x/white^2)/(1+x) that maps ``white`` to exactly 1.
    """

    type: Literal["tonemap"] = "tonemap"
    operator: Literal["aces", "reinhard"] = "aces"
    white: Optional[Positive] = Field(None, description="reinhard only: linear value mapped to 1 (None: never clips)")

    @model_validator(mode="after")
    def _white_for_reinhard(self) -> "ToneMap":
        if self.white is not None and self.operator != "reinhard":
            raise SpecValueError("`white` applies to the reinhard operator only", at=("white",))
        return self


class Bloom(PostSpec):
    """Glow around bright light: light above a threshold, blurred by a pyramid, added back.

    Measured on the frame averaged over 2x2 pixels, a pixel contributes
    ``color * max(soft, m - threshold) / m`` where m is its largest channel and ``soft``
    the quadratic knee of half-width ``soft_knee * threshold`` around the threshold;
    pixels with m <= threshold * (1 - soft_knee) contribute nothing, so a frame below
    that is unchanged. The blur keeps that energy: the frame's sum grows by exactly
    ``intensity`` times the contribution summed over full-resolution pixels (when
    height and width are divisible by 2**levels; nearly otherwise).
    """

    type: Literal["bloom"] = "bloom"
    threshold: NonNegative = Field(1.0, description="linear light level where bloom starts")
    soft_knee: Unit = Field(0.5, description="knee half-width as a fraction of the threshold (0: hard cut)")
    intensity: Annotated[Float, Field(ge=0, le=16, description="fraction of the above-threshold energy added")] = 0.5
    levels: Annotated[Int, Field(ge=1, le=8, description="pyramid levels: reach ~ 2**levels pixels")] = 5
    scatter: Annotated[Float, Field(gt=0, le=1, description="weight ratio of each coarser level to the finer one")] = 0.7


class DepthOfField(PostSpec):
    """Thin-lens defocus from the depth buffer.

    Circle of confusion diameter in pixels, for a surface at depth z (metres, 0 =
    background at infinity) with the lens focused at s:
    ``c = fy * (f / N) * s / (s - f) * |1/z - 1/s|``, where fy is K[1, 1] in pixels,
    N the f-number and f the focal length in metres, ``f = sensor_height * fy / H``
    (the focal length that gives the camera's vertical field of view on a sensor of
    that height). The blur of a pixel has the spread of a uniform disc of diameter c
    (per-axis standard deviation c / 4), capped at ``max_coc_px``.
    """

    needs: ClassVar[tuple[str, ...]] = ("depth", "K")
    type: Literal["depth_of_field"] = "depth_of_field"
    focus_distance_m: Positive = Field(description="distance in focus, metres along the camera axis")
    f_number: Annotated[Float, Field(ge=0.5, le=64, description="aperture f-number N (focal length / aperture diameter)")] = 2.8
    sensor_height_mm: Annotated[Float, Field(gt=0, le=200, description="sensor height; 24 is full frame")] = 24.0
    max_coc_px: Annotated[Float, Field(gt=0, le=64, description="largest circle of confusion diameter, pixels")] = 16.0


class MotionBlur(PostSpec):
    """Average of sub-frames rendered across the shutter interval, in linear light.

    The caller renders ``samples`` sub-frames at the times ``subframe_schedule`` gives
    (centred on the frame's time, so the blur is centred on where the buffers see each
    object) and passes them stacked; this must be the chain's first effect.
    ``shutter_angle_deg`` 360 keeps the shutter open for the whole frame interval.
    """

    type: Literal["motion_blur"] = "motion_blur"
    samples: Annotated[Int, Field(ge=2, le=64, description="sub-frames per frame")] = 8
    shutter: Literal["box", "triangle"] = Field("box", description="weight of sub-frames over the open interval")
    shutter_angle_deg: Annotated[Float, Field(gt=0, le=360, description="open fraction of the frame interval x 360")] = 180.0


class Vignette(PostSpec):
    """Darken towards the corners: factor 1 - amount * r**falloff, r = 0 at the centre, 1 at a corner."""

    type: Literal["vignette"] = "vignette"
    amount: Unit = Field(0.3, description="light lost at the corners, fraction")
    falloff: Annotated[Float, Field(gt=0, le=16, description="exponent of the radial profile")] = 2.0


Lift = Annotated[Float, Field(ge=-1, le=1)]
GammaValue = Annotated[Float, Field(gt=0, le=8)]
Gain = Annotated[Float, Field(ge=0, le=16)]


class ColorGrade(PostSpec):
    """White balance, contrast, saturation and lift/gamma/gain, in linear light, in that order.

    - White balance like a camera's setting: ``temperature_k`` is the colour
      temperature rendered as neutral (lower: bluer image, higher: warmer) and ``tint``
      moves that white towards magenta (+) or green (-); a von Kries adaptation in
      Bradford cone space. 6504 K and tint 0 leave colours unchanged.
    - ``contrast`` scales log luminance about ``pivot`` (Y' = pivot (Y/pivot)**contrast),
      keeping each pixel's chromaticity.
    - ``saturation`` scales the distance from grey (Y + s (rgb - Y)).
    - lift/gamma/gain per channel, as an ASC CDL: rgb' = max(rgb * gain + lift, 0)**(1/gamma).
    The defaults are the identity, exactly.
    """

    type: Literal["color_grade"] = "color_grade"
    temperature_k: Annotated[Float, Field(ge=1667, le=25000, description="white balance temperature, kelvin")] = 6504.0
    tint: Annotated[Float, Field(ge=-1, le=1, description="white balance tint: + magenta, - green")] = 0.0
    contrast: Annotated[Float, Field(gt=0, le=4)] = 1.0
    pivot: Positive = Field(0.18, description="linear luminance left unchanged by contrast (mid grey)")
    saturation: Annotated[Float, Field(ge=0, le=4)] = 1.0
    lift: tuple[Lift, Lift, Lift] = (0.0, 0.0, 0.0)
    gamma: tuple[GammaValue, GammaValue, GammaValue] = (1.0, 1.0, 1.0)
    gain: tuple[Gain, Gain, Gain] = (1.0, 1.0, 1.0)


class ChromaticAberration(PostSpec):
    """Lateral colour: red scaled outwards and blue inwards about the image centre; green stays."""

    type: Literal["chromatic_aberration"] = "chromatic_aberration"
    shift_px: Annotated[Float, Field(ge=-8, le=8, description="red/blue displacement at the corners, pixels")] = 1.0


class FilmGrain(PostSpec):
    """Seeded monochrome grain on display (sRGB-encoded) values, after tone mapping.

    Bell-shaped, zero-mean noise with standard deviation ``intensity * 4 Y (1 - Y)``, Y
    the pixel's display luma: strongest in the mid-tones, none on pure black or white.
    """

    space: ClassVar[Space] = "display"
    type: Literal["film_grain"] = "film_grain"
    intensity: Annotated[Float, Field(ge=0, le=0.5, description="grain standard deviation at mid-grey, display units 0..1")] = 0.03


EffectSpec = Annotated[
    Union[Exposure, ToneMap, Bloom, DepthOfField, MotionBlur, Vignette, ColorGrade, ChromaticAberration, FilmGrain],
    Field(discriminator="type"),
]


def check_order(effects: Sequence[PostSpec]) -> None:
    """Raise ``SpecValueError`` (located at the offending index) if the chain cannot run in this order.

    motion_blur must come first (it turns the sub-frames into one frame); tonemap at
    most once; scene-light effects before ``tonemap`` and before any display effect.
    """
    toned = None
    display = None
    for i, spec in enumerate(effects):
        if spec.type == "motion_blur" and i != 0:
            raise SpecValueError("motion_blur must be the first effect: it merges the sub-frames into one frame", at=(i,))
        if spec.type == "tonemap" and toned is not None:
            raise SpecValueError(f"a chain tone-maps once: remove this tonemap or the one at [{toned}]", at=(i,))
        if spec.space == "scene":
            if toned is not None:
                raise SpecValueError(
                    f"{spec.type} works on linear scene light: move it before the tonemap at [{toned}]", at=(i,)
                )
            if display is not None:
                raise SpecValueError(
                    f"{spec.type} works on linear scene light: move it before {effects[display].type} at [{display}]",
                    at=(i,),
                )
        elif display is None:
            display = i
        if spec.type == "tonemap":
            toned = i


class PostChain(RootModel[tuple[EffectSpec, ...]]):
    """A validated, ordered list of effects (see ``check_order``); ``.root`` is the tuple of them."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _order(self) -> "PostChain":
        check_order(self.root)
        return self


# A game-engine look with no per-scene settings, as a recipe would write it. The ACES
# fit lifts mid-grey (0.18) to 0.27, about half a stop: -0.5 ev puts it back.
GAME_LOOK: tuple[dict, ...] = (
    {"type": "exposure", "ev": -0.5},
    {"type": "bloom", "threshold": 1.0, "soft_knee": 0.5, "intensity": 0.3, "levels": 5},
    {"type": "color_grade", "contrast": 1.1, "saturation": 1.1},
    {"type": "vignette", "amount": 0.25},
    {"type": "tonemap", "operator": "aces"},
    {"type": "film_grain", "intensity": 0.02},
)
