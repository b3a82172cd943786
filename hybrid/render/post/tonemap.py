"""Tone mapping: scene-linear HDR (0..inf) -> display-linear 0..1, per channel.

Both curves are monotonic non-decreasing on x >= 0, map 0 to 0 and approach 1 for
large x. Negative inputs (possible after grading or aberration resampling) count as 0.
"""

from __future__ import annotations

import numpy as np

from hybrid.render.post.registry import Frame, register
from hybrid.render.post.spec import ToneMap
from hybrid.render.post.workspace import scratch


def aces_fit(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Narkowicz's ACES filmic fit, clipped to 0..1.

    Its derivative's numerator, (ad - bc) x^2 + 2ae x + be with the constants below, is
    positive for x >= 0, so the curve is increasing until it is clipped at 1 (x ~ 7.24).
    ``out``, if given, receives the result.
    """
    out = np.maximum(x, np.float32(0.0), out=out)
    num = np.multiply(out, np.float32(2.51), out=scratch("aces.num", out.shape))
    num += np.float32(0.03)
    num *= out
    den = np.multiply(out, np.float32(2.43), out=scratch("aces.den", out.shape))
    den += np.float32(0.59)
    den *= out
    den += np.float32(0.14)
    np.divide(num, den, out=out)
    return np.minimum(out, np.float32(1.0), out=out)


def reinhard(x: np.ndarray, white: float | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """x / (1 + x); with ``white``, x (1 + x / white^2) / (1 + x), which reaches 1 at x = white (clipped above)."""
    out = np.maximum(x, np.float32(0.0), out=out)
    den = np.add(out, np.float32(1.0), out=scratch("reinhard.den", out.shape))
    if white is None:
        out /= den
        return out
    num = np.multiply(out, np.float32(1.0 / (white * white)), out=scratch("reinhard.num", out.shape))
    num += np.float32(1.0)
    out *= num
    out /= den
    return np.minimum(out, np.float32(1.0), out=out)


@register(ToneMap)
def tonemap(frame: Frame, params: ToneMap, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) linear HDR -> (3, H, W) display-linear in 0..1."""
    if params.operator == "aces":
        return aces_fit(frame.rgb, out=frame.out)
    return reinhard(frame.rgb, params.white, out=frame.out)
