"""Errors the field solvers raise for scenes they cannot simulate as asked."""


class FieldError(RuntimeError):
    """A field solver cannot go on as configured; the message names the setting and the fix."""
