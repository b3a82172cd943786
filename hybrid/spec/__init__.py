"""What every YAML spec shares: value types, located errors, YAML with line numbers, tagged unions.

Scenes (``hybrid.scene``), dataset recipes (``hybrid.data.recipe``), post chains
(``hybrid.render.post.spec``) and training configs (``hybrid.train.config``) are all
frozen pydantic models read from YAML; this package is the part that does not know
which:

- ``types``: ``Spec`` (the base model), ``Float`` / ``Int`` (numbers that refuse
  booleans), ``Vec2`` / ``Vec3`` / ``Quat`` / ``UnitQuat``, ``Positive``,
  ``NonNegative``, ``Unit``, ``Color``, ``AxisBox``, and ``SpecValueError`` for
  validators that blame a field;
- ``errors``: ``Issue``, ``SpecError`` (every located problem of one file),
  ``SourceMap`` and the translation of pydantic's errors into located issues;
- ``load``: ``read_source``, ``parse_yaml``, ``apply_overrides``, ``validate_located``;
- ``registry``: ``TaggedUnion``, a discriminated union that grows by registration.

Each kind of file subclasses ``SpecError`` for its own errors and help line.
"""

from hybrid.spec.errors import Issue, SourceMap, SpecError
from hybrid.spec.types import (
    AxisBox,
    Color,
    Float,
    Int,
    NonNegative,
    Positive,
    Quat,
    Spec,
    SpecValueError,
    Unit,
    UnitQuat,
    Vec2,
    Vec3,
)

__all__ = [
    "AxisBox",
    "Color",
    "Float",
    "Int",
    "Issue",
    "NonNegative",
    "Positive",
    "Quat",
    "SourceMap",
    "Spec",
    "SpecError",
    "SpecValueError",
    "Unit",
    "UnitQuat",
    "Vec2",
    "Vec3",
]
