"""The HDR beauty pass's render target: 4x multisampled RGBA16F colour, resolved and read back as float32.

pyrender's offscreen pass draws into its own RGBA8 multisampled framebuffer, which
can only hold 0..1 in 256 steps. This target is what a game engine lights into
instead: half-float colour (about three significant digits over 6e-5 .. 65504, so
highlights many times brighter than white keep their value), the same 4 samples per
pixel and the same 24-bit depth as pyrender's, so both see the same surfaces and the
same anti-aliased edges. The multisample resolve averages the samples in linear
light, which is how a sensor integrates a pixel.

Make it, draw into it and read it with its GL context current.
"""

from __future__ import annotations

import ctypes

import numpy as np

from hybrid.render.errors import RenderSetupError
from hybrid.render.gl import GL, GLError, read_pixels_into

SAMPLES = 4  # as pyrender's multisampled colour buffer
COLOR_FORMAT_NAME = "RGBA16F"


class HDRTarget:
    """A ``width`` x ``height`` float framebuffer for the beauty pass (see the module docstring).

    ``begin(clear_rgb)`` binds it for drawing and clears colour to ``clear_rgb`` (linear
    light, (3,)) and depth to the far plane; ``resolve()`` returns what was drawn as
    float32 (H, W, 3) linear radiance, rows top-down. Raises ``RenderSetupError``
    when the driver cannot make a multisampled float colour buffer.
    """

    def __init__(self, width: int, height: int):
        self.width, self.height = int(width), int(height)
        self._fbos: list[int] = []
        self._rbos: list[int] = []
        try:
            ms_color, ms_depth, color = self._rbos = list(GL.glGenRenderbuffers(3))
            self._storage(ms_color, GL.GL_RGBA16F, SAMPLES, "a 4x multisampled RGBA16F colour buffer")
            self._storage(ms_depth, GL.GL_DEPTH_COMPONENT24, SAMPLES, "a 4x multisampled 24-bit depth buffer")
            self._storage(color, GL.GL_RGBA16F, 0, "an RGBA16F colour buffer")
            self._ms_fbo, self._fbo = self._fbos = list(GL.glGenFramebuffers(2))
            self._attach(self._ms_fbo, ((GL.GL_COLOR_ATTACHMENT0, ms_color), (GL.GL_DEPTH_ATTACHMENT, ms_depth)))
            self._attach(self._fbo, ((GL.GL_COLOR_ATTACHMENT0, color),))
        except BaseException:
            self.delete()
            raise
        finally:
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, 0)
        # Readback target, reused every frame (rows bottom-up as GL stores them).
        self._pixels = np.empty((self.height, self.width, 3), dtype=np.float32)

    def _storage(self, rbo: int, fmt: int, samples: int, what: str) -> None:
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rbo)
        error = GL.GL_NO_ERROR
        try:  # PyOpenGL checks glGetError after each call and raises what it finds
            if samples:
                GL.glRenderbufferStorageMultisample(GL.GL_RENDERBUFFER, samples, fmt, self.width, self.height)
            else:
                GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, self.width, self.height)
        except GLError as err:
            error = err.err
        got = int(GL.glGetRenderbufferParameteriv(GL.GL_RENDERBUFFER, GL.GL_RENDERBUFFER_SAMPLES))
        if error != GL.GL_NO_ERROR or got < samples:
            raise RenderSetupError(
                f"the HDR beauty pass needs {what} of {self.width}x{self.height} pixels (OpenGL 3.0 float render "
                f"targets with multisampling), which this OpenGL driver ({_driver()}) refused "
                f"(GL error 0x{int(error):x}, {got} samples); Mesa's llvmpipe (libgl1-mesa-dri) or a GPU driver "
                "provides it"
            )

    def _attach(self, fbo: int, attachments) -> None:
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, fbo)
        for attachment, rbo in attachments:
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, attachment, GL.GL_RENDERBUFFER, rbo)
        GL.glDrawBuffers(1, [GL.GL_COLOR_ATTACHMENT0])
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            raise RenderSetupError(
                f"the HDR beauty pass's {COLOR_FORMAT_NAME} framebuffer is incomplete (GL status 0x{int(status):x}) "
                f"on this OpenGL driver ({_driver()}): it cannot render into float colour buffers"
            )

    def begin(self, clear_rgb: np.ndarray, clear_alpha: float = 1.0) -> None:
        """Bind the multisampled framebuffer for drawing, with pyrender's depth state, and clear it.

        clear_rgb: (3,) linear light the background keeps where nothing is drawn;
        clear_alpha: its alpha (surfaces write 1, so with 0 the resolved alpha is each
        pixel's coverage, ``resolve(coverage=True)``).
        """
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._ms_fbo)
        GL.glViewport(0, 0, self.width, self.height)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthMask(GL.GL_TRUE)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glDepthRange(0.0, 1.0)
        GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
        GL.glEnable(GL.GL_MULTISAMPLE)
        GL.glClearBufferfv(GL.GL_COLOR, 0, np.array([*np.asarray(clear_rgb, dtype=np.float64), clear_alpha], dtype=np.float32))
        GL.glClearBufferfv(GL.GL_DEPTH, 0, np.ones(1, dtype=np.float32))

    def resolve(self, coverage: bool = False):
        """Average each pixel's samples and read them back.

        Returns float32 (H, W, 3) linear radiance, rows top-down, in a new array; with
        ``coverage`` also the resolved alpha, float32 (H, W): the share of the pixel's
        samples that surfaces covered when ``begin`` cleared alpha to 0.
        """
        w, h = self.width, self.height
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._ms_fbo)
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, self._fbo)
        GL.glBlitFramebuffer(0, 0, w, h, 0, 0, w, h, GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._fbo)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        # The raw entry point writes straight into our array: no intermediate bytes object.
        if coverage:
            rgba = np.empty((h, w, 4), dtype=np.float32)
            read_pixels_into(0, 0, w, h, GL.GL_RGBA, GL.GL_FLOAT, rgba.ctypes.data_as(ctypes.c_void_p))
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
            rgba = rgba[::-1]
            return rgba[..., :3].copy(), rgba[..., 3].copy()
        read_pixels_into(0, 0, w, h, GL.GL_RGB, GL.GL_FLOAT, self._pixels.ctypes.data_as(ctypes.c_void_p))
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        return self._pixels[::-1].copy()

    def delete(self) -> None:
        """Free the framebuffers and renderbuffers (the context must be current)."""
        if self._fbos:
            GL.glDeleteFramebuffers(len(self._fbos), self._fbos)
            self._fbos = []
        if self._rbos:
            GL.glDeleteRenderbuffers(len(self._rbos), self._rbos)
            self._rbos = []


def _driver() -> str:
    def text(name: int) -> str:
        value = GL.glGetString(name)
        return value.decode(errors="replace") if value else "?"

    return f"{text(GL.GL_RENDERER)}, OpenGL {text(GL.GL_VERSION)}"
