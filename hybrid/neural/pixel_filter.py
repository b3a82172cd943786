"""The path tracer's pixel filter applied to the raster frame: the reference's antialiasing, not a blur of taste.

The two back ends reconstruct pixels differently. The rasteriser's beauty pass averages
four samples inside each pixel (a box one pixel wide, ``hybrid.render.beauty``); Cycles
weights its samples with a Blackman-Harris window, and its ``filter_width`` w (default
1.5 px) is half the window's full extent: the window spans 2w pixels (measured: an edge on
a pixel boundary gives the pixel beside it 0.1186 of the step, which is the mass of a 3 px
window beyond half a pixel, and 0.006 for a 1.5 px one). So a path-traced frame is softer
than a raster frame of the same scene by that window, and a renderer that learns to look
path traced must be too.

For a scene that is constant inside each pixel the exact discrete mapping is a
convolution of the raster frame with taps k_j = the window's mass over pixel j:
``filter_taps(1.5)`` = (0.1186, 0.7628, 0.1186) per axis, applied separably to linear
radiance. It is exact for an edge on a pixel boundary (``tests/test_cycles.py`` renders
one both ways). The neural renderer applies it where instance ids change
(``geometric_edges``): there the raster frame's box is the only antialiasing, while
inside surfaces its textures are already prefiltered by mipmaps.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np

from hybrid.render.materials import DISPLAY_GAMMA  # the raster frame's encoding (beauty.encode_display)

# Blackman-Harris coefficients (4 terms, -92 dB side lobes), as Cycles' film filter.
BLACKMAN_HARRIS = (0.35875, -0.48829, 0.14128, -0.01168)


def _window_integral(u: float) -> float:
    """Integral of the Blackman-Harris window over t in [0, u] (t in [0, 1] spans the window)."""
    a0, a1, a2, a3 = BLACKMAN_HARRIS
    two_pi = 2.0 * math.pi
    return (a0 * u + a1 * math.sin(two_pi * u) / two_pi + a2 * math.sin(2 * two_pi * u) / (2 * two_pi)
            + a3 * math.sin(3 * two_pi * u) / (3 * two_pi))


@lru_cache(maxsize=16)
def filter_taps(filter_width: float) -> np.ndarray:
    """float64 (2r + 1,) taps summing to 1: the mass of Cycles' Blackman-Harris pixel window of
    ``filter_width`` w (full extent 2w px, centred on the pixel) over each whole pixel at offsets -r..r."""
    if not filter_width > 0:
        raise ValueError(f"filter_width must be positive, got {filter_width!r}")
    extent = 2.0 * filter_width
    radius = max(0, math.ceil(extent / 2.0 - 0.5))

    def cdf(x: float) -> float:  # window mass left of x pixels from the centre
        u = min(max(x / extent + 0.5, 0.0), 1.0)
        return _window_integral(u)

    taps = np.array([cdf(j + 0.5) - cdf(j - 0.5) for j in range(-radius, radius + 1)])
    return taps / taps.sum()


def match_pixel_filter(frames: np.ndarray, filter_width: float, where: Optional[np.ndarray] = None) -> np.ndarray:
    """float32 (T, 3, H, W) in [-1, 1]: display-encoded frames in the model's range ([-1, 1] for 0..255)
    convolved with ``filter_taps`` along both image axes in linear light (the border pixel repeats).

    ``where``: bool (T, H, W); only those pixels take the filtered value, the rest keep theirs
    (``geometric_edges``)."""
    from scipy.ndimage import correlate1d

    taps = filter_taps(float(filter_width))
    frames = np.asarray(frames, dtype=np.float32)
    lin = np.power(np.clip((frames + 1.0) * 0.5, 0.0, 1.0), np.float32(DISPLAY_GAMMA))
    lin = correlate1d(correlate1d(lin, taps, axis=-1, mode="nearest"), taps, axis=-2, mode="nearest")
    out = np.power(np.clip(lin, 0.0, 1.0), np.float32(1.0 / DISPLAY_GAMMA)) * 2.0 - 1.0
    if where is None:
        return out
    return np.where(np.asarray(where, dtype=bool)[:, None], out, frames)


def geometric_edges(instance: np.ndarray, filter_width: float) -> np.ndarray:
    """bool (T, H, W): pixels within the taps' reach (4-neighbours, then grown to the taps' radius) of a
    boundary between instance ids, where the rasteriser's box filter is the frame's only antialiasing.

    Inside a surface the raster frame's texture is already prefiltered by mipmaps over the
    pixel's footprint, and its shading is smooth, so the window is applied at silhouettes
    and object boundaries only: on the example scenes filtering everywhere took SSIM below
    the raster frame's on textured floors (0.893 against 0.912 on bouncing_balls), at edges
    only it stays above."""
    from scipy.ndimage import binary_dilation

    from hybrid.neural.conditioning import instance_boundaries

    edge = instance_boundaries(instance)
    radius = len(filter_taps(float(filter_width))) // 2
    if radius > 1:
        edge = binary_dilation(edge, structure=np.ones((1, 3, 3), bool), iterations=radius - 1)
    return edge
