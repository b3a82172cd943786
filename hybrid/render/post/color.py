"""Colour encodings of the post chain: the exact sRGB curve, the 2.2 power law, luminance.

The chain works in linear light (scene-referred, HDR: values may exceed 1) and ends by
encoding display values with the exact piecewise sRGB curve (IEC 61966-2-1), so the
``rgb`` buffer is sRGB as the buffer table says.

Input. The chain's input is the HDR beauty pass's float radiance
(``hybrid.render.beauty``), linear and unclamped; nothing needs decoding.

Relation to the 8-bit rgb buffer. Without a post chain the rgb buffer is that radiance
ended with ``clamp(pow(linear, 1/2.2), 0, 1)`` and 8-bit quantisation, as pyrender's
own colour pass did: a pure power law, not the sRGB curve, and clipped at 1 (no HDR).
The two curves agree at 0 and 1 but differ in the shadows: the same linear value
encodes to bytes up to 9 codes apart (around code 15), and decoding such bytes with
the sRGB curve instead of gamma 2.2 gives linear values up to 60x too large near black
(code 1). So:

- bytes encoded with the 2.2 power law (that rgb buffer, pyrender's pass) decode with
  :func:`gamma_to_linear` (its exact inverse);
- bytes that are sRGB (textures, colours in scene files, this chain's output) decode
  with :func:`srgb_to_linear` / :func:`decode_srgb8`.

Materials decode colour factors with gamma 2.2, the inverse of that rgb buffer's
curve, so a plain render shows colours as written (textures are decoded with the sRGB
curve in the shader).
"""

from __future__ import annotations

import numpy as np

from hybrid.render.post.workspace import scratch

# Rec. 709 / sRGB primaries, D65 white: luminance Y of linear RGB.
LUMA_REC709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

PYRENDER_GAMMA = 2.2

# The sRGB curve's break points: linear segment below, 2.4 power segment above.
_SRGB_LINEAR_MAX = 0.0031308  # in linear light
_SRGB_ENCODED_MAX = 0.04045  # the same point, encoded


def srgb_to_linear(encoded) -> np.ndarray:
    """sRGB-encoded values in 0..1 (any shape) -> linear light in 0..1, float32.

    uint8 input is read as bytes (divided by 255). Values outside 0..1 are clipped.
    """
    x = np.asarray(encoded)
    if x.dtype == np.uint8:
        return decode_srgb8(x)
    x = np.clip(x.astype(np.float32, copy=False), 0.0, 1.0)
    return np.where(x <= _SRGB_ENCODED_MAX, x / np.float32(12.92), np.power((x + 0.055) / 1.055, np.float32(2.4))).astype(
        np.float32, copy=False
    )


def _encode_inplace(x: np.ndarray, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """scale * srgb(clip(x, 0, 1)) + offset, computed in place in float32 ``x``; returns ``x``.

    Branch-free: the linear segment of min(x, t) plus the power segment of max(x, t),
    less the power segment's value at t. The two segments meet at t to within 3e-8, so
    this is the sRGB curve to float32 precision, without the masks that a select would
    need (several times slower here). ``scale`` and ``offset`` fold a later
    quantisation into the same passes.
    """
    low = np.clip(x, 0.0, _SRGB_LINEAR_MAX, out=scratch("srgb.low", x.shape))
    np.clip(x, _SRGB_LINEAR_MAX, 1.0, out=x)
    np.power(x, np.float32(1 / 2.4), out=x)
    x *= np.float32(1.055 * scale)
    x += np.float32(offset - scale * (0.055 + 12.92 * _SRGB_LINEAR_MAX))
    low *= np.float32(12.92 * scale)
    x += low
    return x


def _encode_bytes_inplace(x: np.ndarray) -> np.ndarray:
    """Linear light float32 (any shape, overwritten) -> sRGB bytes round(255 srgb(clip(x, 0, 1))), uint8.

    255 srgb + 0.5 lies in [0.5, 255.5) to float32 precision, so truncating is rounding.
    """
    return _encode_inplace(x, 255.0, 0.5).astype(np.uint8)


def linear_to_srgb(linear) -> np.ndarray:
    """Linear light (any shape) -> sRGB-encoded values in 0..1, float32; input clipped to 0..1 first.

    Accurate to float32 rounding (about 1e-7; the ends may sit that far inside 0..1).
    """
    return np.clip(_encode_inplace(np.array(linear, dtype=np.float32, copy=True)), 0.0, 1.0)


def quantize8(encoded: np.ndarray) -> np.ndarray:
    """Display values (any shape, nominally 0..1) -> uint8 bytes round(255 x), clipped to 0..255."""
    x = np.clip(encoded, 0.0, 1.0)
    x *= np.float32(255.0)
    x += np.float32(0.5)
    return x.astype(np.uint8)


def encode_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear light (any shape) -> sRGB bytes, uint8: round(255 srgb(clip(linear, 0, 1))).

    The curve itself, not a table: a byte decoded with :func:`decode_srgb8` encodes
    back to the same byte.
    """
    return quantize8(linear_to_srgb(linear))


# 256-entry tables: decoding a byte image is one gather.
_SRGB8_TO_LINEAR = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
_SRGB8_TO_LINEAR.setflags(write=False)


def decode_srgb8(image: np.ndarray) -> np.ndarray:
    """sRGB bytes uint8 (any shape) -> linear light float32 in 0..1 (same shape)."""
    return _SRGB8_TO_LINEAR[np.asarray(image, dtype=np.uint8)]


def gamma_to_linear(image, gamma: float = PYRENDER_GAMMA) -> np.ndarray:
    """Pure power-law encoded values -> linear light float32, the inverse of pyrender's output curve.

    image: uint8 bytes (read as x / 255) or floats in 0..1, any shape. The 8-bit rgb
    buffer (and pyrender's own pass) encodes ``pow(linear, 1/2.2)``; this undoes it
    exactly up to the 8-bit quantisation (and cannot restore what was clipped above 1:
    the post chain takes the beauty pass's float radiance instead).
    """
    x = np.asarray(image)
    if x.dtype == np.uint8:
        table = np.power(np.arange(256, dtype=np.float64) / 255.0, gamma).astype(np.float32)
        return table[x]
    return np.power(np.clip(x.astype(np.float32, copy=False), 0.0, 1.0), np.float32(gamma))


def luma_planar(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rec. 709 weighted sum of planar (3, H, W) values -> (H, W) float32 (luminance of linear light).

    ``out``, if given, receives the result (it must not be one of ``rgb``'s planes).
    """
    y = np.multiply(rgb[0], LUMA_REC709[0], out=out)
    part = np.multiply(rgb[1], LUMA_REC709[1], out=scratch("luma.part", y.shape))
    y += part
    np.multiply(rgb[2], LUMA_REC709[2], out=part)
    y += part
    return y


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance of (..., 3) values -> (...), float32 (linear in, linear out)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return rgb[..., 0] * LUMA_REC709[0] + rgb[..., 1] * LUMA_REC709[1] + rgb[..., 2] * LUMA_REC709[2]
