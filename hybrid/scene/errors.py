"""Scene errors: a ``SpecError`` whose last line says where to look up scene fields.

The located issues, the source map and the wording of pydantic's errors are shared
with recipes and training configs and live in ``hybrid.spec.errors``.
"""

from __future__ import annotations

# Issue and SourceMap are named here too: the scene checks raise SceneError with them.
from hybrid.spec.errors import Issue, SourceMap, SpecError  # noqa: F401

# The last line of every SceneError: where to find what is valid.
HELP_LINE = "run `hybrid schema` to list every field with its type, default and meaning"


class SceneError(SpecError):
    """A scene that cannot be used, with every located problem in ``issues``."""

    help_line = HELP_LINE
