"""Turn buffers into viewable sRGB images (uint8, (H, W, 3)): for previews, never for data.

Each buffer's entry in the registry (``hybrid.buffers``) names the function here
that shows it, so a new buffer gets a view with one function and its registry line.
"""

from __future__ import annotations

import numpy as np


def _turbo(x: np.ndarray) -> np.ndarray:
    """A compact polynomial approximation of the Turbo colormap, x in [0, 1] -> (..., 3) in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)[..., None]  # (..., 1)
    kr = np.array([0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943])
    kg = np.array([0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604])
    kb = np.array([0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973])
    powers = x ** np.arange(6)
    return np.clip(np.stack([powers @ kr, powers @ kg, powers @ kb], axis=-1), 0, 1)


def show_rgb(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.uint8)


def show_radiance(radiance: np.ndarray) -> np.ndarray:
    """Linear radiance, clipped at 1 and encoded with gamma 2.2 (the beauty pass's display encoding)."""
    x = np.clip(np.nan_to_num(np.asarray(radiance, dtype=np.float32)), 0.0, 1.0)
    return np.floor(x ** (1.0 / 2.2) * 255.0 + 0.5).astype(np.uint8)


def show_depth(depth: np.ndarray) -> np.ndarray:
    """Inverse depth through Turbo: near is warm, far is cool, background (0) black.

    Inverse depth spreads the near range, where objects are, instead of spending
    the colours on a floor that runs to the horizon.
    """
    hit = depth > 0
    out = np.zeros(depth.shape + (3,), dtype=np.uint8)
    if hit.any():
        inv = 1.0 / depth[hit]
        lo, hi = np.percentile(inv, [1, 99.5])
        out[hit] = (_turbo((inv - lo) / max(hi - lo, 1e-9)) * 255).astype(np.uint8)
    return out


def instance_colors(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours by golden-ratio hue stepping; id 0 is black."""
    ids = np.arange(n)
    hue = (ids * 0.618033988749895) % 1.0
    s, v = 0.65, 0.95
    k = (np.array([5, 3, 1])[None, :] + hue[:, None] * 6) % 6
    rgb = v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
    cols = (rgb * 255).astype(np.uint8)
    cols[0] = 0
    return cols


def show_instance(instance: np.ndarray) -> np.ndarray:
    return instance_colors(int(instance.max()) + 1)[instance]


def show_normal(normal: np.ndarray) -> np.ndarray:
    """Camera-space normals as the usual (n + 1) / 2 colours, with y and z flipped to OpenGL's look."""
    n = np.asarray(normal, dtype=np.float32) * np.array([1, -1, -1], dtype=np.float32)
    out = ((n + 1) * 0.5 * 255).clip(0, 255).astype(np.uint8)
    out[np.all(normal == 0, axis=-1)] = 0
    return out


def show_flow(flow: np.ndarray, max_px: float | None = None) -> np.ndarray:
    """Direction as hue, magnitude as saturation (white = still), the Middlebury convention.

    NaN flow (a point that moved behind the other frame's camera) shows black.
    """
    missing = ~np.isfinite(flow).all(axis=-1)
    flow = np.where(missing[..., None], 0.0, flow)
    dx, dy = flow[..., 0], flow[..., 1]
    mag = np.hypot(dx, dy)
    scale = max_px if max_px is not None else max(float(np.percentile(mag, 99)), 1e-6)
    hue = (np.arctan2(-dy, -dx) / np.pi + 1) / 2
    sat = np.clip(mag / scale, 0, 1)
    k = (np.array([5, 3, 1]) + hue[..., None] * 6) % 6
    rgb = 1 - sat[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)
    rgb[missing] = 0
    return (rgb * 255).astype(np.uint8)


def _grey(x: np.ndarray) -> np.ndarray:
    g = (np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def show_amount(amount: np.ndarray) -> np.ndarray:
    """A non-negative amount (gas_density, liquid_thickness) as grey: 0 black, its 99th percentile of non-zero pixels white."""
    a = np.nan_to_num(np.asarray(amount, dtype=np.float32))
    seen = a[a > 0]
    scale = float(np.percentile(seen, 99)) if seen.size else 1.0
    return _grey(a / max(scale, 1e-12))


def show_mask(mask: np.ndarray) -> np.ndarray:
    """A 0/1 mask (liquid_mask): white where set."""
    return _grey((np.asarray(mask) > 0).astype(np.float32))


def show_temperature(kelvin: np.ndarray) -> np.ndarray:
    """Temperature above ambient (gas_temperature) as a fire ramp (black, red, yellow, white) up to 1500 K."""
    x = np.clip(np.nan_to_num(np.asarray(kelvin, dtype=np.float32)) / 1500.0, 0.0, 1.0)
    rgb = np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def visualize(name: str, array: np.ndarray) -> np.ndarray:
    """A (H, W, 3) uint8 view of one frame of buffer `name`."""
    from hybrid.buffers import BUFFERS

    entry = BUFFERS.get(name)
    if entry is not None and entry.preview is not None:
        return entry.preview(array)
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 3:
        a = np.linalg.norm(a, axis=-1)
    hi = float(a.max()) if a.size else 1.0
    g = (a / hi * 255).astype(np.uint8) if hi > 0 else np.zeros(a.shape, np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)
