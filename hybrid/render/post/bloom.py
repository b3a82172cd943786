"""Bloom: the light above a threshold, spread by a blur pyramid and added back.

Steps, for a (3, H, W) linear frame:

1. Halve the resolution (2x2 means), as engines do: the glow is smooth, and the
   threshold then acts on light averaged over 2x2 pixels, which keeps single-pixel
   sparkles from flickering.
2. Prefilter: each half-resolution pixel keeps the fraction ``max(soft, m - t) / m``
   of its colour, m its largest channel and t the threshold, with the quadratic soft
   knee ``soft = clip(m - t + k, 0, 2k)**2 / (4k)``, k = soft_knee * t. It is 0 for
   m <= t - k and joins m - t smoothly at m = t + k.
3. Pyramid: level 1 is the prefiltered image blurred by a 5-tap binomial per axis;
   each further level halves the previous one and blurs it with [1, 2, 1] per axis
   (the halving and the upsampling already smooth it), so level l reaches about
   2**l pixels.
4. Recombine coarse to fine with bilinear upsampling; level l weighs scatter**(l-1),
   normalised so the weights sum to 1. Upsample to full resolution and add
   ``intensity`` times the result.

Every step after the first keeps the image mean, so bloom adds exactly
``intensity * 4 * sum(prefiltered half-resolution light)`` to the frame's sum (when H
and W divide by 2**levels; odd sizes repeat an edge row or column when halving, which
changes it slightly). A frame whose every pixel has all channels at or below
``t - k`` is returned unchanged, bit for bit.
"""

from __future__ import annotations

import numpy as np

from hybrid.render.post.filters import COLS, ROWS, blur121, blur2d, downsample2, upsample2
from hybrid.render.post.registry import Frame, register
from hybrid.render.post.spec import Bloom
from hybrid.render.post.workspace import scratch


def bright_pass(rgb: np.ndarray, threshold: float, soft_knee: float) -> np.ndarray | None:
    """The prefiltered light of step 2, (3, h, w) float32, or None where no pixel passes."""
    m = np.maximum(np.maximum(rgb[0], rgb[1]), rgb[2])
    knee = threshold * soft_knee
    if not np.any(m > threshold - knee):
        return None
    over = m - np.float32(threshold)
    if knee > 0:
        soft = np.clip(over + np.float32(knee), 0.0, np.float32(2 * knee))
        soft *= soft
        soft *= np.float32(1.0 / (4.0 * knee))
        np.maximum(soft, over, out=over)
    else:
        np.maximum(over, np.float32(0.0), out=over)
    # m > 0 wherever over > 0 (threshold >= 0), so the guard only avoids 0/0.
    over /= np.maximum(m, np.float32(1e-20))
    return rgb * over


def _blur5(x: np.ndarray) -> np.ndarray:
    """The 5-tap binomial [1, 4, 6, 4, 1] / 16 along rows and columns (two [1, 2, 1] passes each)."""
    a = scratch("bloom.blur.a", x.shape)
    b = scratch("bloom.blur.b", x.shape)
    blur121(x, ROWS, out=a)
    blur121(a, ROWS, out=b)
    blur121(b, COLS, out=a)
    return blur121(a, COLS)


def pyramid_blur(light: np.ndarray, levels: int, scatter: float) -> np.ndarray:
    """Steps 3 and 4 up to the input's resolution: (3, h, w) -> (3, h, w) with the same sum."""
    pyramid = [_blur5(light)]
    while len(pyramid) < levels and min(pyramid[-1].shape[-2:]) >= 2:
        pyramid.append(blur2d(downsample2(pyramid[-1])))
    weights = [scatter**i for i in range(len(pyramid))]
    total = sum(weights)
    acc = pyramid[-1] * np.float32(weights[-1] / total)
    for level, w in zip(pyramid[-2::-1], weights[-2::-1]):
        acc = upsample2(acc, level.shape[-2:])
        acc += level * np.float32(w / total)
    return acc


@register(Bloom)
def bloom(frame: Frame, params: Bloom, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) linear light -> (3, H, W) linear light plus glow."""
    if params.intensity == 0:
        return frame.rgb
    light = bright_pass(downsample2(frame.rgb), params.threshold, params.soft_knee)
    if light is None:
        return frame.rgb
    glow = pyramid_blur(light, params.levels, params.scatter)
    glow *= np.float32(params.intensity)
    out = upsample2(glow, frame.rgb.shape[-2:], out=frame.out)
    out += frame.rgb
    return out
