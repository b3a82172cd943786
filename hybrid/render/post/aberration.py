"""Chromatic aberration (lateral colour): red and blue magnified slightly differently from green.

Red is sampled at the image centre + (p - centre) / (1 + s) and blue at
centre + (p - centre) / (1 - s), bilinearly with clamped edges, where s is
``shift_px`` over the centre-to-corner distance: red moves outwards and blue inwards
by ``shift_px`` at the corners, and by proportionally less nearer the centre. A pure
scaling is separable, so each channel is two 1-D interpolations.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from hybrid.render.post.registry import Frame, register
from hybrid.render.post.spec import ChromaticAberration


@functools.lru_cache(maxsize=64)
def _taps(n: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left index, right index and right weight (float32) of 1-D linear sampling at centre + (i + 0.5 - centre) / scale."""
    c = n / 2.0
    src = c + (np.arange(n) + 0.5 - c) / scale - 0.5  # continuous index, pixel centres at integers
    src = np.clip(src, 0.0, n - 1.0)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (src - i0).astype(np.float32)


def _scale_channel(ch: np.ndarray, scale: float, out: np.ndarray) -> None:
    """Write (H, W) ``ch`` magnified by ``scale`` about its centre into ``out`` (scale > 1: content moves outwards)."""
    h, w = ch.shape
    r0, r1, fr = _taps(h, scale)
    rows = ch[r0]
    upper = ch[r1]
    upper -= rows
    upper *= fr[:, None]
    rows += upper
    c0, c1, fc = _taps(w, scale)
    np.take(rows, c0, axis=1, out=out)
    right = np.take(rows, c1, axis=1)
    right -= out
    right *= fc
    out += right


@register(ChromaticAberration)
def chromatic_aberration(frame: Frame, params: ChromaticAberration, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) linear light -> (3, H, W) with red and blue radially displaced; green untouched."""
    if params.shift_px == 0:
        return frame.rgb
    h, w = frame.height, frame.width
    s = params.shift_px / math.hypot(h / 2.0, w / 2.0)
    rgb = frame.rgb
    out = np.empty_like(rgb) if frame.out is None else frame.out
    _scale_channel(rgb[0], 1.0 + s, out[0])
    out[1] = rgb[1]
    _scale_channel(rgb[2], 1.0 - s, out[2])
    return out
