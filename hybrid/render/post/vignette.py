"""Vignette: light falling off towards the corners, as through a real lens barrel."""

from __future__ import annotations

import functools

import numpy as np

from hybrid.render.post.registry import Frame, register
from hybrid.render.post.spec import Vignette


@functools.lru_cache(maxsize=16)
def vignette_factor(height: int, width: int, amount: float, falloff: float) -> np.ndarray:
    """(H, W) float32 factor 1 - amount * r**falloff, read-only.

    r is the distance of the pixel centre from the image centre divided by the
    centre-to-corner distance (0 at the centre, 1 at the very corner), so the corner
    loses ``amount`` of its light and the centre nothing. Cached: the same for every
    frame of a clip.
    """
    y = (np.arange(height) + 0.5 - height / 2.0) / (height / 2.0)
    x = (np.arange(width) + 0.5 - width / 2.0) / (width / 2.0)
    # Normalised per axis then by sqrt(2): the corners reach exactly r = 1 at any aspect.
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2.0
    factor = (1.0 - amount * r2 ** (falloff / 2.0)).astype(np.float32)
    factor.setflags(write=False)
    return factor


@register(Vignette)
def vignette(frame: Frame, params: Vignette, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) linear light -> the same times the radial factor."""
    if params.amount == 0:
        return frame.rgb
    return np.multiply(frame.rgb, vignette_factor(frame.height, frame.width, params.amount, params.falloff), out=frame.out)
