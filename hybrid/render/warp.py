"""Warping a frame along the exact flow, and which pixels two frames both see.

``flow_bwd[t]`` gives, for every pixel p of frame t, the offset to where its surface
point was in frame t-1 (``hybrid.render.flow``). So frame t-1 resampled at
p + flow_bwd[t](p) is frame t "predicted" from t-1: what temporal consistency
metrics compare with frame t, and how noise is carried from frame to frame.

A pixel's point may have been hidden in frame t-1 (behind another surface, or out of
view): flow alone does not say. ``covisible`` tells, per pixel of frame t, whether
its point is visible at its target in frame t-1: the target lies in the image, the
surface there belongs to the same object, and the forward flow from there comes
back to the pixel (exact flows cancel; a surface that was hidden lands elsewhere).
Pixel convention as in ``hybrid.camera``: pixel (row r, column c) has its centre at
(c + 0.5, r + 0.5); arrays are (H, W, ...) rows top-down.
"""

from __future__ import annotations

import numpy as np


def flow_targets(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column and row coordinates (float, pixel-index units) each pixel's flow points to: (x, y), each (H, W)."""
    height, width = flow.shape[:2]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    return cols + flow[..., 0], rows + flow[..., 1]


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`image` (H, W) or (H, W, C) sampled at pixel-index coordinates x (columns), y (rows), clamped to the edge."""
    height, width = image.shape[:2]
    x = np.clip(x, 0.0, width - 1.0)
    y = np.clip(y, 0.0, height - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.intp), width - 2) if width > 1 else np.zeros_like(x, dtype=np.intp)
    y0 = np.minimum(np.floor(y).astype(np.intp), height - 2) if height > 1 else np.zeros_like(y, dtype=np.intp)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def warp_previous(prev: np.ndarray, flow_bwd: np.ndarray) -> np.ndarray:
    """Frame t predicted from frame t-1: `prev` (H, W[, C]) sampled bilinearly at p + flow_bwd(p); float64.

    NaN flow (the point was behind the previous camera) gives NaN.
    """
    x, y = flow_targets(flow_bwd)
    out = sample_bilinear(prev, np.nan_to_num(x), np.nan_to_num(y))
    bad = ~np.isfinite(flow_bwd).all(axis=-1)
    if bad.any():
        out[bad] = np.nan
    return out


def covisible(
    flow_bwd: np.ndarray,
    flow_fwd_prev: np.ndarray,
    instance: np.ndarray,
    instance_prev: np.ndarray,
    tolerance_px: float = 0.5,
) -> np.ndarray:
    """bool (H, W): pixels of frame t whose surface point is visible at its target in frame t-1.

    flow_bwd: (H, W, 2) frame t's backward flow; flow_fwd_prev: (H, W, 2) frame t-1's
    forward flow; instance / instance_prev: (H, W) ids of frames t and t-1. A pixel
    counts when its target lies inside frame t-1, the nearest pixel there shows the same
    instance, and that pixel's forward flow, read bilinearly at the target, brings it
    back within `tolerance_px` of where it started. Background (instance 0 and no
    surface) counts like any surface: its flow is exact too.
    """
    height, width = instance.shape
    x, y = flow_targets(flow_bwd)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = np.where(finite, x, -1.0), np.where(finite, y, -1.0)
    inside = finite & (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    xi = np.clip(np.rint(x).astype(np.intp), 0, width - 1)
    yi = np.clip(np.rint(y).astype(np.intp), 0, height - 1)
    same = instance_prev[yi, xi] == instance
    back = sample_bilinear(np.nan_to_num(flow_fwd_prev, nan=1e6), x, y)
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    err = np.hypot(x + back[..., 0] - cols, y + back[..., 1] - rows)
    return inside & same & (err <= tolerance_px)


def covisible_clip(flow_bwd: np.ndarray, flow_fwd: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """bool (T, H, W): pixels of frame t whose surface point was visible in frame t-1 too (``covisible``); frame 0 all False.

    flow_bwd, flow_fwd: (T, H, W, 2) in pixels; instance: (T, H, W).
    """
    masks = np.zeros(np.shape(instance), dtype=bool)
    for t in range(1, len(instance)):
        masks[t] = covisible(flow_bwd[t], flow_fwd[t - 1], instance[t], instance[t - 1])
    return masks
