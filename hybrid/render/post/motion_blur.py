"""Motion blur from sub-frames: a weighted average in linear light over the shutter interval.

The renderer cannot blur by itself: the caller renders the scene at the sub-frame
times of ``subframe_schedule`` (physics state interpolated to those times) and this
module averages them. Averaging linear light (never sRGB bytes) is what a real sensor
integrates; the weights sum to 1 so a static scene is unchanged and the total energy
of a moving object is conserved.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from hybrid.render.post.registry import Frame, PostError, register
from hybrid.render.post.spec import MotionBlur


def shutter_weights(samples: int, shutter: str = "box") -> np.ndarray:
    """(samples,) float64 weights summing to 1.

    ``box``: equal (a shutter open at full aperture the whole interval). ``triangle``:
    proportional to 1 - |2 (i + 0.5) / samples - 1|, a shutter that opens and closes
    linearly, which softens the blur's ends.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if shutter == "box":
        w = np.ones(samples)
    elif shutter == "triangle":
        w = 1.0 - np.abs(2.0 * (np.arange(samples) + 0.5) / samples - 1.0)
    else:
        raise ValueError(f"unknown shutter {shutter!r}: use 'box' or 'triangle'")
    return w / w.sum()


def subframe_schedule(params: MotionBlur) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, weights), both (samples,) float64.

    offsets: sub-frame times relative to the frame's time, in frame intervals (multiply
    by 1/fps for video seconds, by time_scale/fps for simulated seconds); midpoints of
    ``samples`` equal slices of the open interval
    [-angle/720, +angle/720], centred on the frame so the blur is centred where depth,
    instance and flow buffers (rendered at the frame's time) place each object.
    weights: ``shutter_weights``.
    """
    n = params.samples
    open_fraction = params.shutter_angle_deg / 360.0
    offsets = open_fraction * ((np.arange(n) + 0.5) / n - 0.5)
    return offsets, shutter_weights(n, params.shutter)


def accumulate_subframes(
    frames: Union[Sequence[np.ndarray], np.ndarray],
    weights: Union[None, str, Sequence[float], np.ndarray] = None,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Average linear sub-frames: S frames of one shape (a list or a stacked array) -> one float32 frame.

    Works on any frame layout ((H, W, 3) as rendered, or planar (3, H, W)): the average
    is per element.

    weights: None or 'box' (equal), 'triangle' (see ``shutter_weights``), or S
    non-negative numbers, normalised here to sum to 1. ``out``, if given, receives the
    result (float32, one frame's shape, not overlapping the frames).
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim < 2:
            raise PostError(f"sub-frames must be stacked along a first axis, got shape {frames.shape}")
        stack = list(frames)
    else:
        stack = [np.asarray(f) for f in frames]
    if not stack:
        raise PostError("no sub-frames to accumulate")
    shape = stack[0].shape
    if any(f.shape != shape for f in stack):
        raise PostError(f"sub-frames differ in shape: {sorted({f.shape for f in stack})}")
    n = len(stack)
    if weights is None or isinstance(weights, str):
        w = shutter_weights(n, weights or "box")
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or np.any(w < 0) or not w.sum() > 0:
            raise PostError(f"weights must be {n} non-negative numbers with a positive sum, got {weights!r}")
        w = w / w.sum()
    out = np.multiply(stack[0], np.float32(w[0]), out=out, dtype=np.float32)
    term = np.empty_like(out)
    for f, wi in zip(stack[1:], w[1:]):
        out += np.multiply(f, np.float32(wi), out=term, dtype=np.float32)
    return out


@register(MotionBlur)
def motion_blur(frame: Frame, params: MotionBlur, rng: np.random.Generator) -> np.ndarray:
    """(S, 3, H, W) linear sub-frames at ``subframe_schedule`` times -> (3, H, W) linear frame."""
    stack = frame.rgb
    if stack.ndim != 4 or stack.shape[0] != params.samples:
        got = f"{stack.shape[0]} sub-frames" if stack.ndim == 4 else f"one frame of shape {stack.shape}"
        raise PostError(
            f"motion_blur with samples={params.samples} needs that many sub-frames stacked as (S, H, W, 3), "
            f"got {got}; render them at the times subframe_schedule(spec) gives"
        )
    return accumulate_subframes(stack, subframe_schedule(params)[1], out=frame.out)
