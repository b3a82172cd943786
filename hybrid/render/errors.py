"""Render errors, importable without loading OpenGL (so callers can catch them when GL itself is missing)."""


class RenderSetupError(RuntimeError):
    """Headless OpenGL is not available; the message says what to install or set."""
