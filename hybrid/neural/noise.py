"""Sampling noise carried along the exact flow, so texture that grows out of noise stays on its surface.

Frame t's noise is frame t-1's noise moved with ``flow_bwd[t]``: a pixel whose surface
point was visible in frame t-1 takes the noise sample that sat on that point; a pixel
whose point was hidden or out of view (disoccluded) gets fresh noise.

Why every pixel stays exactly N(0, 1) and pixels stay independent: samples are moved,
never blended (bilinear resampling would average neighbours and shrink the variance),
and no sample is copied to two pixels (where a surface grows, the extra pixels draw
fresh noise). Which sample goes where depends only on the flow and visibility, never
on the noise values, so frame t is a selection of distinct independent N(0, 1) values
plus fresh ones: exactly i.i.d. N(0, 1), with correlation only along the flow.

Sub-pixel motion: every sample keeps an anchor, its offset (dx, dy) from its pixel's
centre, within half a pixel. A sample moves to the pixel whose cell its anchor reaches,
and the rest of the offset is kept, so a surface sliding 0.3 px per frame carries its
noise one pixel every three or four frames instead of never (rounding each frame's
flow alone would glue the noise to the screen). This is the nearest-sample limit of
the integral-noise idea of Chang et al., "How I Warped Your Noise" (ICLR 2024): exact
and O(pixels), at the cost of blocky (whole-pixel) noise motion.

Pixel convention as in ``hybrid.render.warp``: pixel (row r, column c) has its centre
at (c, r) in the pixel-index coordinates the flow is added to.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hybrid.render.warp import covisible_clip


def warp_noise_anchored(
    prev_noise: np.ndarray,
    prev_anchor: Optional[np.ndarray],
    flow_bwd: np.ndarray,
    visible: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Move frame t-1's noise to frame t.

    prev_noise: (C, H, W) i.i.d. N(0, 1); prev_anchor: (H, W, 2) (dx, dy) offset in pixels of
    each sample from its pixel centre, in [-0.5, 0.5] (None: all 0); flow_bwd: (H, W, 2) frame
    t's backward flow in pixels (NaN allowed); visible: (H, W) bool, frame t's pixels whose
    point was visible in frame t-1 (``hybrid.render.warp.covisible``).
    Returns (noise (C, H, W) float32, anchor (H, W, 2) float64).
    """
    c, height, width = prev_noise.shape
    anchor = np.zeros((height, width, 2)) if prev_anchor is None else np.asarray(prev_anchor, dtype=np.float64)
    flow = np.asarray(flow_bwd, dtype=np.float64)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    sx, sy = cols + flow[..., 0], rows + flow[..., 1]  # where each pixel's point was in frame t-1
    ok = np.asarray(visible, dtype=bool) & np.isfinite(sx) & np.isfinite(sy)
    sx, sy = np.where(ok, sx, 0.0), np.where(ok, sy, 0.0)
    x0, y0 = np.floor(sx).astype(np.intp), np.floor(sy).astype(np.intp)

    # Of the four pixels around the source point, the one whose sample's anchor lies in
    # the source point's cell (the cell that maps onto this pixel), nearest first.
    best_d = np.full((height, width), np.inf)
    best_q = np.full((height, width), -1, dtype=np.intp)
    best_e = np.zeros((height, width, 2))
    for oy in (0, 1):
        for ox in (0, 1):
            qx, qy = x0 + ox, y0 + oy
            inside = ok & (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height)
            qxc, qyc = np.clip(qx, 0, width - 1), np.clip(qy, 0, height - 1)
            ex = qx + anchor[qyc, qxc, 0] - sx
            ey = qy + anchor[qyc, qxc, 1] - sy
            d = ex * ex + ey * ey
            better = inside & (np.abs(ex) <= 0.5) & (np.abs(ey) <= 0.5) & (d < best_d)
            best_d = np.where(better, d, best_d)
            best_q = np.where(better, qyc * width + qxc, best_q)
            best_e[better] = np.stack([ex[better], ey[better]], axis=-1)

    # A sample claimed by several pixels (a growing surface) goes to the nearest one;
    # the others draw fresh noise, so no two pixels ever share a sample.
    claimants = np.flatnonzero(best_q.ravel() >= 0)
    q = best_q.ravel()[claimants]
    order = np.lexsort((claimants, best_d.ravel()[claimants], q))
    q_sorted = q[order]
    first = np.ones(len(q_sorted), dtype=bool)
    first[1:] = q_sorted[1:] != q_sorted[:-1]
    winners, sources = claimants[order][first], q_sorted[first]

    noise = rng.standard_normal((c, height * width), dtype=np.float32)
    noise[:, winners] = np.asarray(prev_noise, dtype=np.float32).reshape(c, -1)[:, sources]
    new_anchor = np.zeros((height * width, 2))
    new_anchor[winners] = best_e.reshape(-1, 2)[winners]
    return noise.reshape(c, height, width), new_anchor.reshape(height, width, 2)


def warp_noise(
    prev_noise: np.ndarray, flow_bwd: np.ndarray, visible: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(C, H, W) float32: `prev_noise` carried one frame along `flow_bwd` (H, W, 2), fresh where not `visible` (H, W).

    Each sample starts centred on its pixel; ``clip_noise`` also carries the sub-pixel anchors.
    """
    return warp_noise_anchored(prev_noise, None, flow_bwd, visible, rng)[0]


def clip_noise(
    frames: int, channels: int, height: int, width: int, flow_bwd: np.ndarray, visible: np.ndarray, seed: int
) -> np.ndarray:
    """float32 (T, C, H, W) noise for a whole clip: frame 0 fresh, each next frame carried from the one before.

    flow_bwd: (T, H, W, 2) backward flow in pixels at this size; visible: (T, H, W) bool
    (``clip_visibility``; frame 0 is ignored). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((frames, channels, height, width), dtype=np.float32)
    out[0] = rng.standard_normal((channels, height, width), dtype=np.float32)
    anchor = None
    for t in range(1, frames):
        out[t], anchor = warp_noise_anchored(out[t - 1], anchor, flow_bwd[t], visible[t], rng)
    return out


def clip_visibility(flow_fwd: np.ndarray, flow_bwd: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """bool (T, H, W): pixels of frame t whose point was visible in frame t-1 (all False in frame 0).

    flow_fwd, flow_bwd: (T, H, W, 2); instance: (T, H, W). See ``hybrid.render.warp.covisible_clip``.
    """
    return covisible_clip(flow_bwd, flow_fwd, instance)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 2) flow in pixels, point-sampled onto an (h, w) = `size` grid and rescaled to its pixels."""
    from hybrid.neural.conditioning import resize_nearest

    flow = np.asarray(flow, dtype=np.float32)
    height, width = flow.shape[1:3]
    h, w = size
    out = resize_nearest(flow, size).copy()
    out[..., 0] *= w / width
    out[..., 1] *= h / height
    return out
