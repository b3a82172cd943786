"""Surface textures for the rasteriser: mip levels averaged in linear light, sampled anisotropically.

A texture image holds display (sRGB-encoded) values. Far away or at a grazing angle
many texels fall into one pixel, and what the pixel should show is the mean of the
light those texels reflect: an average of *linear* values. OpenGL's stock path
(pyrender's: an 8-bit RGBA texture, ``glGenerateMipmap``, the shader decoding the
filtered value) averages the encoded values instead: a black-and-white checker seen
from afar averages to code 0.5, which decodes to 0.21 of white's light instead of 0.5.
The distant half of a checkered floor was a fifth to a half darker than the path
tracer's, which averages radiance over each pixel.

``LinearMipTexture`` fixes both ends of that:

- every mip level is made here from the one above it by a box filter over linear
  values (``linear_mip_chain``) and stored sRGB-encoded in 8 bits
  (``GL_SRGB8_ALPHA8``), which keeps dark texels as precise as the image file;
- the texture is sRGB, so the sampler decodes each texel *before* it filters
  (bilinear, trilinear and anisotropic taps all mix linear values) and shaders
  receive linear colour (``beauty.frag`` uses it as is, ``gbuffer.frag`` encodes it
  back for the display-valued albedo buffer);
- anisotropic filtering (up to ``MAX_ANISOTROPY`` taps along the footprint's long
  axis, where the driver offers it: Mesa's llvmpipe does) stops a floor seen at a
  grazing angle being blurred across as much as along the view, which greyed the
  checker far sooner than a pixel-area average does.

Against Cycles (32 samples + OIDN, first 8 frames at 256 x 144), the raster frame of
scenes/bouncing_balls.yaml went from 24.01 dB PSNR (stock) to 29.18 (linear mip
levels) and 34.97 (and anisotropic sampling; 4 and 16 taps scored alike);
mesh_tower.yaml 23.01 -> 26.90 -> 31.80.
"""

from __future__ import annotations

import numpy as np

from hybrid.render.gl import pyrender

# EXT/ARB_texture_filter_anisotropic (core in OpenGL 4.6), not in every PyOpenGL namespace.
GL_TEXTURE_MAX_ANISOTROPY = 0x84FE
GL_MAX_TEXTURE_MAX_ANISOTROPY = 0x84FF
# Taps along a footprint's long axis: 16 covers a floor seen down to about 3.6 degrees
# above the horizon before the sampler falls back to a coarser (blurrier) level.
MAX_ANISOTROPY = 16.0


def srgb_decode(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 -> linear (IEC 61966-2-1, the curve OpenGL's sRGB textures use)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """Linear values in 0..1 -> sRGB-encoded (the inverse of ``srgb_decode``)."""
    x = np.asarray(x)
    x = np.clip(x.astype(np.result_type(x.dtype, np.float32), copy=False), 0.0, 1.0)  # float32 stays float32
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1.0 / 2.4) - 0.055)


def _halve(level: np.ndarray) -> np.ndarray:
    """(H, W, C) linear -> (max(1, H // 2), max(1, W // 2), C): each output texel the area mean of its footprint.

    Even sizes: the mean of a 2 x 2 block. An odd size (a non-power-of-two image) maps
    2n + 1 texels onto n, each output texel covering (2n + 1) / n input texels with the
    shared ones split by overlap, so no texel is dropped and the level's mean is kept.
    """
    for axis in (0, 1):
        n_in = level.shape[axis]
        n_out = max(1, n_in // 2)
        if n_in == 2 * n_out:
            level = 0.5 * (level[0::2] + level[1::2]) if axis == 0 else 0.5 * (level[:, 0::2] + level[:, 1::2])
            continue
        # Overlap of input texel [i, i + 1) with output texel [j s, (j + 1) s), s = n_in / n_out.
        edges = np.arange(n_out + 1) * (n_in / n_out)
        lo = np.maximum(edges[:-1, None], np.arange(n_in)[None, :])
        hi = np.minimum(edges[1:, None], np.arange(n_in)[None, :] + 1)
        weights = np.clip(hi - lo, 0.0, None) * (n_out / n_in)  # rows sum to 1
        level = np.moveaxis(np.tensordot(weights.astype(level.dtype), np.moveaxis(level, axis, 0), axes=(1, 0)), 0, axis)
    return level


def linear_mip_chain(rgba: np.ndarray) -> list[np.ndarray]:
    """(H, W, 4) uint8 sRGB-encoded RGBA -> every mip level down to 1 x 1, as uint8 sRGB-encoded RGBA.

    Level 0 is the image itself. Colour is averaged in linear light, alpha as stored
    (it is linear by definition).
    """
    rgba = np.asarray(rgba)
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"linear_mip_chain wants (H, W, 4) uint8, got {rgba.shape} {rgba.dtype}")
    levels = [rgba]
    decode = srgb_decode(np.arange(256) / 255.0)  # a table: the image's texels take 256 values
    linear = np.concatenate([decode[rgba[..., :3]], rgba[..., 3:] / 255.0], axis=2)
    while linear.shape[0] > 1 or linear.shape[1] > 1:
        linear = _halve(linear)
        encoded = np.concatenate([srgb_encode(linear[..., :3]), linear[..., 3:]], axis=2)
        levels.append(np.round(encoded * 255.0).astype(np.uint8))
    return levels


class LinearMipTexture(pyrender.Texture):
    """A pyrender texture whose image is sRGB-encoded RGBA uint8, uploaded as described in the module docstring."""

    def _add_to_context(self):
        from OpenGL import GL

        if self._texid is not None:
            raise ValueError("texture already loaded into this OpenGL context")
        levels = linear_mip_chain(self.source)
        self._texid = GL.glGenTextures(1)
        GL.glBindTexture(self.tex_type, self._texid)
        for i, level in enumerate(levels):
            # OpenGL's row 0 is the bottom of the image.
            data = np.ascontiguousarray(level[::-1])
            GL.glTexImage2D(
                self.tex_type, i, GL.GL_SRGB8_ALPHA8, level.shape[1], level.shape[0], 0,
                GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, data,
            )
        GL.glTexParameteri(self.tex_type, GL.GL_TEXTURE_BASE_LEVEL, 0)
        GL.glTexParameteri(self.tex_type, GL.GL_TEXTURE_MAX_LEVEL, len(levels) - 1)
        GL.glTexParameteri(self.tex_type, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
        GL.glTexParameteri(self.tex_type, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR_MIPMAP_LINEAR)
        GL.glTexParameteri(self.tex_type, GL.GL_TEXTURE_WRAP_S, self.sampler.wrapS)
        GL.glTexParameteri(self.tex_type, GL.GL_TEXTURE_WRAP_T, self.sampler.wrapT)
        limit = float(np.asarray(GL.glGetFloatv(GL_MAX_TEXTURE_MAX_ANISOTROPY)).reshape(-1)[0]) if _anisotropic() else 1.0
        if limit > 1.0:
            GL.glTexParameterf(self.tex_type, GL_TEXTURE_MAX_ANISOTROPY, min(MAX_ANISOTROPY, limit))
        GL.glBindTexture(self.tex_type, 0)


def _anisotropic() -> bool:
    """Whether the current context offers anisotropic filtering (core in 4.6, else the ARB/EXT extension)."""
    from OpenGL import GL

    count = int(np.asarray(GL.glGetIntegerv(GL.GL_NUM_EXTENSIONS)).reshape(-1)[0])
    names = {GL.glGetStringi(GL.GL_EXTENSIONS, i) for i in range(count)}
    return bool(names & {b"GL_ARB_texture_filter_anisotropic", b"GL_EXT_texture_filter_anisotropic"})
