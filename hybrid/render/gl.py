"""The one place that imports pyrender / OpenGL and creates or destroys GL contexts.

Every other render module takes ``pyrender`` and the GL functions from here, so the
platform choice and the NumPy compatibility alias are made exactly once, before
PyOpenGL picks its platform:

- ``PYOPENGL_PLATFORM`` defaults to ``egl``: headless, works with Mesa's software
  rasteriser (llvmpipe) and with GPU drivers alike. A value set by the user wins.
- pyrender 0.1.45 still uses ``np.infty``, which NumPy 2 removed.

Several contexts may live in one process (one per ``Rasterizer``). pyrender's own
teardown calls ``eglTerminate`` on the display, which all contexts of the process
share, and would kill every other live context; ``GLContext.close`` therefore
destroys only its own context. Objects that hold GL names (buffers, textures,
programs) are only valid in the context that made them: call ``make_current``
before touching them.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402

if not hasattr(np, "infty"):
    np.infty = np.inf  # type: ignore[attr-defined]

from hybrid.render.errors import RenderSetupError  # noqa: E402


_SETUP_HINT = (
    "headless rendering needs EGL with Mesa: install Debian's libegl1 libegl-mesa0 libgl1-mesa-dri "
    "libgles2 (`make setup` does, as root) and leave PYOPENGL_PLATFORM unset or set to 'egl' "
    f"(it is {os.environ.get('PYOPENGL_PLATFORM')!r})"
)

try:
    import pyrender  # noqa: E402,F401  (re-exported for the other render modules)
    from OpenGL import GL  # noqa: E402,F401
except (ImportError, OSError) as _err:  # PyOpenGL fails here when libEGL is missing
    raise RenderSetupError(f"cannot load OpenGL ({_err}); {_SETUP_HINT}") from _err

# Shadow-map edge in texels. pyrender's 2048 x 2048 maps are cleared and redrawn for
# every shadowed light every frame; on a software rasteriser that memory traffic
# costs more than the 256 to 720 pixel frames we render need (1024 keeps shadow
# edges within about a pixel at those sizes). HYBRID_SHADOW_MAP_SIZE overrides it.
SHADOW_MAP_SIZE = int(os.environ.get("HYBRID_SHADOW_MAP_SIZE", "1024"))
import pyrender.light as _pyrender_light  # noqa: E402
import pyrender.renderer as _pyrender_renderer  # noqa: E402

pyrender_renderer = _pyrender_renderer  # the module whose GL names the beauty pass swaps while it draws

_pyrender_light.SHADOW_TEX_SZ = SHADOW_MAP_SIZE
_pyrender_renderer.SHADOW_TEX_SZ = SHADOW_MAP_SIZE

# The raw glReadPixels writes into a caller's array (a ctypes pointer), without the
# intermediate bytes object of the wrapped version.
from OpenGL.raw.GL.VERSION.GL_1_0 import glReadPixels as read_pixels_into  # noqa: E402,F401
from OpenGL.error import GLError  # noqa: E402,F401  (what PyOpenGL raises when a GL call sets an error)


class GLContext:
    """An offscreen GL context of ``width`` x ``height`` pixels and the pyrender renderer bound to it.

    ``renderer`` is a ``pyrender.Renderer``; calling ``renderer.render(scene, flags |
    RenderFlags.OFFSCREEN)`` after ``make_current()`` is exactly what
    ``pyrender.OffscreenRenderer.render`` does.
    """

    def __init__(self, width: int, height: int):
        self.width = int(width)
        self.height = int(height)
        self._platform = _make_platform(self.width, self.height)
        try:
            self._platform.init_context()
            self._platform.make_current()
        except Exception as err:  # EGL reports a missing driver as assorted errors
            self._platform = None
            raise RenderSetupError(f"cannot create an offscreen GL context ({err}); {_SETUP_HINT}") from err
        self.renderer = pyrender.Renderer(self.width, self.height)

    @property
    def closed(self) -> bool:
        return self._platform is None

    def make_current(self) -> None:
        if self._platform is None:
            raise RuntimeError("this GL context was closed")
        self._platform.make_current()

    def close(self) -> None:
        """Free the renderer's GL objects and destroy this context (other contexts stay usable)."""
        if self._platform is None:
            return
        platform, self._platform = self._platform, None
        try:
            platform.make_current()
            self.renderer.delete()
            # Renderer.delete leaves this name set; a second delete (from its __del__)
            # would then free a framebuffer of whichever context is current.
            self.renderer._shadow_fb = None
        finally:
            _destroy_platform(platform)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _make_platform(width: int, height: int):
    platform_name = os.environ.get("PYOPENGL_PLATFORM")
    if platform_name == "egl":
        from pyrender.platforms import egl

        device = egl.get_device_by_index(int(os.environ.get("EGL_DEVICE_ID", "0")))
        return egl.EGLPlatform(width, height, device=device)
    if platform_name == "osmesa":
        from pyrender.platforms.osmesa import OSMesaPlatform

        return OSMesaPlatform(width, height)
    raise RenderSetupError(
        f"PYOPENGL_PLATFORM={platform_name!r} is not supported for offscreen rendering; unset it or use 'egl' (or 'osmesa')"
    )


def _destroy_platform(platform) -> None:
    """Destroy one context without terminating the display the other contexts share."""
    display = getattr(platform, "_egl_display", None)
    context = getattr(platform, "_egl_context", None)
    if display is not None and context is not None:
        from OpenGL import EGL

        EGL.eglMakeCurrent(display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
        EGL.eglDestroyContext(display, context)
        platform._egl_context = None
        platform._egl_display = None
    elif display is None and context is None and hasattr(platform, "delete_context"):
        platform.delete_context()  # OSMesa: each context is independent
