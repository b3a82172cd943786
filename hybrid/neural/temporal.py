"""The neural renderer's correction carried along the exact flow from frame to frame.

The detail transfer (``hybrid.neural.upsample``) adds a low-frequency correction to the
raster beauty: the light the rasteriser misses. Most of it is attached to surfaces
(indirect light on a wall, a soft contact shadow under a resting ball), so the
correction a surface point had in the previous frame is a good estimate of its
correction now. Each frame's correction is blended with the previous frame's output
correction moved along the exact backward flow (``flow_bwd``), the reprojection of
temporal anti-aliasing and of SVGF (Schied et al., HPG 2017), with the simulator's own
flow instead of an estimated one:

    out[t](p) = blend * c[t](p) + (1 - blend) * out[t-1](p + flow_bwd[t](p))   where p was visible in t-1
    out[t](p) = c[t](p)                                                          elsewhere

Visibility is ``hybrid.render.warp.covisible_clip`` (the forward-backward flow check and the
same instance id), so a disoccluded pixel never inherits a correction that belonged to
another surface. Independent errors of the model at one pixel shrink in variance by
blend / (2 - blend) (the steady state of the recursion), which is what removes flicker;
the price is lag where lighting moves over a surface: a moving shadow's correction
follows it with an exponential delay of about (1 - blend) / blend frames.
"""

from __future__ import annotations

import numpy as np

from hybrid.render.warp import warp_previous


def carry_along_flow(values: np.ndarray, flow_bwd: np.ndarray, visible: np.ndarray, blend: float) -> np.ndarray:
    """float32 (T, C, H, W): the recursion of the module docstring applied to `values` (T, C, H, W).

    flow_bwd: (T, H, W, 2) backward flow in pixels at the values' size; visible: (T, H, W) bool
    (``hybrid.render.warp.covisible_clip``); blend in (0, 1]: the weight of each frame's own value (1 returns `values`).
    """
    if not 0.0 < blend <= 1.0:
        raise ValueError(f"blend must be in (0, 1], got {blend}")
    values = np.asarray(values, dtype=np.float32)
    if blend == 1.0 or len(values) < 2:
        return values.copy()
    out = values.copy()
    for t in range(1, len(values)):
        carried = warp_previous(out[t - 1].transpose(1, 2, 0), flow_bwd[t]).transpose(2, 0, 1)  # NaN: no flow
        keep = visible[t] & np.isfinite(carried).all(axis=0)
        mixed = blend * values[t] + (1.0 - blend) * np.nan_to_num(carried)
        out[t] = np.where(keep[None], mixed, values[t])
    return out
