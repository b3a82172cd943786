"""Value types shared by every spec model: scenes, recipes, post chains and training configs.

Every number in a spec goes through ``Float`` or ``Int`` (a test checks that no bare
float or int is left in the scene and recipe models), so a boolean never passes as
1 or 0. ``Spec`` is the base of every model: frozen, unknown keys are errors, and
infinite or NaN numbers are refused. Validators raise ``SpecValueError`` to blame a
field and suggest a value; the loaders (``hybrid.spec.load``) turn that into a
located ``file:line:column: path: message`` line.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError


def _not_bool(value: object) -> object:
    """Refuse true/false where a number belongs: pydantic's lax mode would read `radius: true` as 1.0."""
    if isinstance(value, bool):
        # The error's type is not one the loader words specially, so the message it
        # writes is "expected <what this field takes>, got true".
        raise PydanticCustomError("bool_for_number", "expected a number, got a boolean")
    return value


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


class Spec(BaseModel):
    """Base for every spec model: frozen, unknown keys are errors."""

    # allow_inf_nan=False: an infinite or NaN number in a spec is always a mistake
    # (inf mass, NaN position) and would only surface later as a physics blow-up.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Positive = Annotated[Float, Field(gt=0)]
NonNegative = Annotated[Float, Field(ge=0)]
Unit = Annotated[Float, Field(ge=0, le=1)]


# ---------------------------------------------------------------- colours


# A small palette so authors can write `color: red`.
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
            from hybrid.spec.errors import show_value

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


# The JSON Schema of a colour lists every accepted spelling, so editors that check a
# file against `hybrid schema` accept `color: red` and '#rrggbb' as the loader does.
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


# ---------------------------------------------------------------- rotations and boxes


def _unit_quat(q: Quat) -> Quat:
    n = math.sqrt(sum(c * c for c in q))
    if n < 1e-9:
        raise ValueError("quaternion (x, y, z, w) must not be all zeros")
    return tuple(c / n for c in q)  # type: ignore[return-value]


# A quaternion (x, y, z, w) as written, normalised on load.
UnitQuat = Annotated[Quat, AfterValidator(_unit_quat)]


class AxisBox(Spec):
    """An axis-aligned box in world coordinates, metres: ``min`` and ``max`` corners.

    Subclasses say whether a side may be empty (``max == min``) and word the error.
    """

    min: Vec3
    max: Vec3

    def _check_axes(self, bad, error) -> None:
        """Raise ``error(axis, lo, hi)`` for the first axis where ``bad(lo, hi)``."""
        for axis, (lo, hi) in enumerate(zip(self.min, self.max)):
            if bad(lo, hi):
                raise error(axis, lo, hi)
