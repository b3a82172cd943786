"""Separable image filters shared by the effects: binomial blur, 2x down- and upsampling.

Images are float32 with rows and columns as the last two axes: (H, W) or planar
(C, H, W). Every function returns a new array (or fills ``out``, never its input),
and keeps the image's sum (energy):
the blur reflects at the borders about the pixel edge (half-sample symmetric), which
makes its matrix symmetric and so column-stochastic; the 2x2 box downsample and the
bilinear 2x upsample keep the mean. Written with array slices over contiguous runs
rather than generic convolution: at these kernel sizes that is several times faster.
"""

from __future__ import annotations

import numpy as np

from hybrid.render.post.workspace import scratch

ROWS, COLS = -2, -1


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Half-sample symmetric index: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ... for any integer offsets."""
    period = 2 * n
    i = np.mod(i, period)
    return np.where(i < n, i, period - 1 - i)


def _as_lines(x: np.ndarray, axis: int) -> np.ndarray:
    """A view with the filtered axis second to last and everything after it flattened into the last.

    Along columns the lines are the rows: (N, W, 1); along rows, (C, H, W). Slicing
    the middle axis then moves whole contiguous runs.
    """
    if axis == COLS:
        return x.reshape(-1, x.shape[-1], 1)
    return x.reshape(-1, x.shape[-2], x.shape[-1])


def blur121(x: np.ndarray, axis: int, step: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """Convolve with [1, 2, 1] / 4 at taps -step, 0, +step along ``axis`` (ROWS or COLS).

    Adds step**2 / 2 pixels^2 to the variance along that axis. With step = 1, 2, 4, ...
    in turn it is the a-trous cascade: level k has per-axis variance (4**k - 1) / 6.
    ``out``, if given, receives the result (same shape as ``x``, not overlapping it).
    """
    v = _as_lines(x, axis)
    n = v.shape[1]
    d = int(step)
    result = np.empty_like(x) if out is None else out
    out = result.reshape(v.shape)
    if d < n:
        # Neighbour i - d, reflected about the first edge for i < d ...
        out[:, d:] = v[:, : n - d]
        out[:, :d] = v[:, d - 1 :: -1]
        # ... and neighbour i + d, reflected about the last edge for i >= n - d.
        out[:, : n - d] += v[:, d:]
        out[:, n - d :] += v[:, n - 1 : n - d - 1 : -1]
    else:
        idx = np.arange(n)
        out[...] = v[:, _reflect(idx - d, n)]
        out += v[:, _reflect(idx + d, n)]
    out += v
    out += v
    out *= np.float32(0.25)
    return result


def blur2d(x: np.ndarray, step: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """``blur121`` along rows and columns; ``out`` as in ``blur121``."""
    rows = blur121(x, ROWS, step, out=scratch("blur2d.rows", x.shape, x.dtype))
    return blur121(rows, COLS, step, out=out)


def downsample2(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Average 2x2 blocks: (..., H, W) -> (..., ceil(H/2), ceil(W/2)); an odd last row/column is repeated.

    ``out``, if given, receives the result.
    """
    if x.shape[-2] % 2:
        x = np.concatenate([x, x[..., -1:, :]], axis=-2)
    if x.shape[-1] % 2:
        x = np.concatenate([x, x[..., -1:]], axis=-1)
    rows_shape = x.shape[:-2] + (x.shape[-2] // 2, x.shape[-1])
    rows = np.add(x[..., 0::2, :], x[..., 1::2, :], out=scratch("downsample2.rows", rows_shape, x.dtype))
    out = np.add(rows[..., 0::2], rows[..., 1::2], out=out)
    out *= np.float32(0.25)
    return out


def _upsample_axis(x: np.ndarray, axis: int, n_out: int, out: np.ndarray | None = None) -> np.ndarray:
    """Bilinear 2x along ROWS or COLS with pixel centres at half-integers, edge-clamped, cropped to n_out.

    Output 2i sits a quarter pixel before input i, 2i+1 a quarter after: with the
    quarter difference q_i = (v_{i+1} - v_i) / 4, out_{2i+1} = v_i + q_i and
    out_{2i+2} = v_{i+1} - q_i; the two end samples repeat the edge value. Each phase is
    written straight into its every-other-line view of the output. ``out``, if given,
    receives the result (it must have the output shape).
    """
    v = _as_lines(x, axis)
    n = v.shape[1]
    shape = list(x.shape)
    shape[axis] = 2 * n
    full = (v.shape[0], n, 2, v.shape[2])  # output index 2i + phase
    grid = out.reshape(full) if out is not None and n_out == 2 * n else np.empty(full, dtype=v.dtype)
    even, odd = grid[:, :, 0], grid[:, :, 1]
    q = np.subtract(v[:, 1:], v[:, :-1], out=scratch(f"upsample2.diff{axis}", (v.shape[0], n - 1, v.shape[2]), v.dtype))
    q *= np.float32(0.25)
    np.add(v[:, :-1], q, out=odd[:, :-1])
    np.subtract(v[:, 1:], q, out=even[:, 1:])
    even[:, :1] = v[:, :1]
    odd[:, -1:] = v[:, -1:]
    result = grid.reshape(shape)
    if n_out == 2 * n:
        return result
    cropped = result[..., :n_out, :] if axis == ROWS else result[..., :n_out]
    if out is not None:
        out[...] = cropped
        return out
    return np.ascontiguousarray(cropped)


def upsample2(x: np.ndarray, shape: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """Bilinear 2x upsample of (..., h, w) to (..., H, W), ``shape`` = (H, W) with H <= 2h, W <= 2w.

    Columns first, while the image is still half height. ``out``, if given, receives
    the result.
    """
    cols = _upsample_axis(x, COLS, shape[1], out=scratch("upsample2.cols", x.shape[:-1] + (shape[1],), x.dtype))
    return _upsample_axis(cols, ROWS, shape[0], out=out)
