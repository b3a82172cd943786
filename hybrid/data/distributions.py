"""Distributions of recipe values: what varies between the clips of a dataset, and how it is drawn.

Every varying quantity of a recipe is a *distribution*, written in one of these forms:

    0.5                                 a constant
    {uniform: [lo, hi]}                 uniform on [lo, hi]
    {normal: [mean, std], clip: [lo, hi]}  Gaussian, clamped to [lo, hi] (clip optional)
    {choice: [a, b, c], weights: [1, 2, 1]}  one of the values (weights optional)
    {randint: [lo, hi]}                 a whole number from lo to hi, both included

Each form is a model with ``sample(rng) -> float`` (one draw from a
``numpy.random.Generator``) and ``support() -> (lo, hi)`` (bounds of every draw), so a
recipe field can check at load that every value it may draw is valid (``bounded``).
A new form is one model plus one line in ``FORMS`` and ``Number``.

Colours are sRGB as in scenes (``[r, g, b]`` in 0..1, ``'#rrggbb'`` or a name), or a
colour distribution ``{palette: [...], weights: [...]}`` or ``{hsv: [h, s, v]}``
(each a distribution; hue in turns, 0..1 wraps around): ``ColorChoice``.
"""

from __future__ import annotations

import colorsys
import difflib
import math
from typing import Annotated, Literal, Optional, Sequence, Union

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from hybrid.spec.errors import show_value
from hybrid.spec.types import Color, Float, Int, NonNegative, Spec, SpecValueError


class RecipeSpec(Spec):
    """Base of recipe models: frozen, unknown keys are errors, and defaults go through
    validation so they can be written in YAML form (``size: 0.5``, ``color: gray``)."""

    model_config = ConfigDict(validate_default=True)


class Distribution(RecipeSpec):
    """A distribution over numbers. Every form defines ``sample(rng) -> float`` (one draw)
    and ``support() -> (lo, hi)`` (bounds of every draw)."""


class Constant(Distribution):
    kind: Literal["constant"] = "constant"
    constant: Float

    def sample(self, rng: np.random.Generator) -> float:
        return float(self.constant)

    def support(self) -> tuple[float, float]:
        return (self.constant, self.constant)


def _ordered(pair: tuple[float, float], form: str, what: str = "[lo, hi]") -> None:
    if pair[0] > pair[1]:
        raise SpecValueError(
            f"`{form}: {what}` needs lo <= hi, got {show_value(list(pair))}; swap the two numbers", at=(form,)
        )


class Interval(Distribution):
    """A form written `{<kind>: [lo, hi]}`: lo must not exceed hi."""

    @model_validator(mode="after")
    def _check(self) -> "Interval":
        _ordered(getattr(self, self.kind), self.kind)  # type: ignore[attr-defined]
        return self


class Uniform(Interval):
    kind: Literal["uniform"] = "uniform"
    uniform: tuple[Float, Float] = Field(description="[lo, hi]")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(*self.uniform))

    def support(self) -> tuple[float, float]:
        return self.uniform


class Normal(Distribution):
    kind: Literal["normal"] = "normal"
    normal: tuple[Float, NonNegative] = Field(description="[mean, standard deviation]")
    clip: Optional[tuple[Float, Float]] = Field(None, description="[lo, hi]: draws outside are clamped")

    @model_validator(mode="after")
    def _check(self) -> "Normal":
        if self.clip is not None:
            _ordered(self.clip, "clip")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        value = float(rng.normal(*self.normal))
        return float(np.clip(value, *self.clip)) if self.clip is not None else value

    def support(self) -> tuple[float, float]:
        return self.clip if self.clip is not None else (-math.inf, math.inf)


def _check_weights(weights: Sequence[float], count: int, of: str, hint: str = "") -> None:
    """Relative weights: one per option of `of`, not all 0."""
    if len(weights) != count:
        raise SpecValueError(f"`weights` has {len(weights)} entries but `{of}` has {count}{hint}", at=("weights",))
    if sum(weights) <= 0:
        raise SpecValueError("`weights` must not all be 0", at=("weights",))


class Choice(Distribution):
    kind: Literal["choice"] = "choice"
    choice: tuple[Float, ...] = Field(min_length=1)
    weights: Optional[tuple[NonNegative, ...]] = Field(None, description="relative; need not sum to 1")

    @model_validator(mode="after")
    def _check(self) -> "Choice":
        if self.weights is not None:
            _check_weights(self.weights, len(self.choice), "choice", "; give one weight per value")
        return self

    def sample(self, rng: np.random.Generator) -> float:
        return float(self.choice[pick_index(rng, self.weights, len(self.choice))])

    def support(self) -> tuple[float, float]:
        return (min(self.choice), max(self.choice))


class RandInt(Interval):
    kind: Literal["randint"] = "randint"
    randint: tuple[Int, Int] = Field(description="[lo, hi], both included")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.integers(self.randint[0], self.randint[1], endpoint=True))

    def support(self) -> tuple[float, float]:
        return (float(self.randint[0]), float(self.randint[1]))


# Written forms, by the key that names them. A new form is one model plus one line.
FORMS: dict[str, type[Distribution]] = {
    "constant": Constant,
    "uniform": Uniform,
    "normal": Normal,
    "choice": Choice,
    "randint": RandInt,
}
_FORMS_HELP = "a number, {uniform: [lo, hi]}, {normal: [mean, std], clip: [lo, hi]}, {choice: [...]} or {randint: [lo, hi]}"


def pick_index(rng: np.random.Generator, weights: Optional[Sequence[float]], n: int) -> int:
    """Index of one of ``n`` options, with relative ``weights`` (None: equally likely)."""
    if weights is None:
        return int(rng.integers(n))
    p = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(n, p=p / p.sum()))


def _distribution_form(value: object) -> object:
    """The written form of a distribution -> a mapping tagged with its `kind`, or a located error."""
    if isinstance(value, BaseModel):
        return value  # built in Python
    if isinstance(value, bool):
        raise SpecValueError(f"expected {_FORMS_HELP}, got {show_value(value)}")
    if isinstance(value, (int, float)):
        return {"kind": "constant", "constant": value}
    if isinstance(value, dict):
        if "kind" in value:
            return value  # already tagged (a recipe dumped by model_dump)
        forms = [key for key in value if key in FORMS]
        if len(forms) == 1:
            return {"kind": forms[0], **value}
        if len(forms) > 1:
            raise SpecValueError(
                f"a distribution has one form, got both `{forms[0]}` and `{forms[1]}`", at=(forms[1],)
            )
        if not value:
            raise SpecValueError(f"an empty mapping is not a distribution; expected {_FORMS_HELP}")
        unknown = [key for key in value if key not in ("weights", "clip")]
        if not unknown:
            raise SpecValueError(f"`{next(iter(value))}` needs a distribution form next to it: {_FORMS_HELP}")
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(FORMS), n=1, cutoff=0.5)
        raise SpecValueError(
            f"unknown distribution `{key}`; expected {_FORMS_HELP}", at=(key,), suggestion=close[0] if close else None
        )
    if isinstance(value, list):
        raise SpecValueError(
            f"a list is not a distribution: write {{choice: {show_value(value)}}} to pick one of these values, "
            "or {uniform: [lo, hi]} for a range"
        )
    raise SpecValueError(f"expected {_FORMS_HELP}, got {show_value(value)}")


Number = Annotated[
    Union[Constant, Uniform, Normal, Choice, RandInt],
    Field(discriminator="kind"),
    BeforeValidator(_distribution_form),
]


def _number(x: float) -> str:
    return f"{x:g}"


def bounded(
    ge: Optional[float] = None,
    gt: Optional[float] = None,
    le: Optional[float] = None,
    lt: Optional[float] = None,
    whole: bool = False,
) -> AfterValidator:
    """A check that every value a distribution can give lies in the given bounds (and is whole)."""
    words = []
    if ge is not None:
        words.append(f"at least {_number(ge)}")
    if gt is not None:
        words.append(f"greater than {_number(gt)}")
    if le is not None:
        words.append(f"at most {_number(le)}")
    if lt is not None:
        words.append(f"less than {_number(lt)}")
    need = " and ".join(words)

    def check(dist: Distribution) -> Distribution:
        lo, hi = dist.support()
        if whole:
            wholes = (
                isinstance(dist, RandInt)
                or (isinstance(dist, Constant) and float(dist.constant).is_integer())
                or (isinstance(dist, Choice) and all(float(v).is_integer() for v in dist.choice))
            )
            if not wholes:
                raise SpecValueError(
                    "this must be a whole number: use {randint: [lo, hi]}, {choice: [...]} of whole numbers, "
                    "or a whole number"
                )
        bad = None
        if (ge is not None and lo < ge) or (gt is not None and lo <= gt):
            bad = lo
        elif (le is not None and hi > le) or (lt is not None and hi >= lt):
            bad = hi
        if bad is not None:
            if math.isinf(bad):
                raise SpecValueError(
                    f"values must be {need}, but an unclipped normal distribution can give any value; "
                    "add `clip: [lo, hi]`"
                )
            raise SpecValueError(f"values must be {need}, but this distribution can give {_number(bad)}")
        return dist

    return AfterValidator(check)


PositiveNumber = Annotated[Number, bounded(gt=0)]
NonNegativeNumber = Annotated[Number, bounded(ge=0)]
UnitNumber = Annotated[Number, bounded(ge=0, le=1)]
ElevationNumber = Annotated[Number, bounded(gt=-90, lt=90)]
Number3 = tuple[Number, Number, Number]


# ---------------------------------------------------------------- colours


def _color_form(value: object) -> object:
    """A single colour (name, '#rrggbb', [r, g, b]) is a palette of one."""
    if isinstance(value, str) or (
        isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(c, (int, float)) for c in value)
    ):
        return {"palette": [value]}
    return value


class ColorDist(RecipeSpec):
    """A distribution over sRGB colours: one of a `palette` (optionally weighted), or `hsv` ranges."""

    palette: Optional[tuple[Color, ...]] = Field(None, min_length=1)
    weights: Optional[tuple[NonNegative, ...]] = Field(None, description="relative weights of the palette entries")
    hsv: Optional[Number3] = Field(
        None, description="[hue, saturation, value]; hue in turns (wraps around 1), saturation and value in 0..1"
    )

    @model_validator(mode="after")
    def _check(self) -> "ColorDist":
        if (self.palette is None) == (self.hsv is None):
            raise SpecValueError("a colour distribution needs exactly one of `palette` or `hsv`")
        if self.weights is not None:
            if self.palette is None:
                raise SpecValueError("`weights` only apply to a `palette`", at=("weights",))
            _check_weights(self.weights, len(self.palette), "palette")
        if self.hsv is not None:
            for i, label in ((1, "saturation"), (2, "value")):
                lo, hi = self.hsv[i].support()
                if lo < 0 or hi > 1:
                    raise SpecValueError(f"hsv {label} must stay in 0..1", at=("hsv", i))
        return self

    def sample(self, rng: np.random.Generator) -> list[float]:
        """One sRGB colour [r, g, b] in 0..1."""
        if self.palette is not None:
            return [float(c) for c in self.palette[pick_index(rng, self.weights, len(self.palette))]]
        assert self.hsv is not None
        h, s, v = (d.sample(rng) for d in self.hsv)
        rgb = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
        return [float(c) for c in rgb]


ColorChoice = Annotated[ColorDist, BeforeValidator(_color_form)]


