"""Exposure: linear light times 2**ev, the photographic stop."""

from __future__ import annotations

import numpy as np

from hybrid.render.post.registry import Frame, register
from hybrid.render.post.spec import Exposure


@register(Exposure)
def exposure(frame: Frame, params: Exposure, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) linear light -> the same scaled by 2**ev."""
    if params.ev == 0:
        return frame.rgb
    return np.multiply(frame.rgb, np.float32(2.0**params.ev), out=frame.out)
