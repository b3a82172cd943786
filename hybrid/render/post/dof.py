"""Depth of field: thin-lens circle of confusion from the depth buffer, blur layered by its size.

Circle of confusion (CoC) diameter in pixels of a surface at depth z metres (0 means
background, infinitely far), lens focused at s metres, f-number N, focal length f:

    c(z) = fy * (f / N) * s / (s - f) * |1/z - 1/s|

with fy = K[1, 1] (pixels) and f = sensor_height * fy / H, the focal length that gives
the camera's field of view on that sensor. c is 0 at z = s, grows with |1/z - 1/s|,
and is fy f / (N (s - f)) for the background at infinity.

The blur is a ladder of levels ("layers" by CoC). Level "sharp" is the frame itself;
the others are computed at half resolution: the 2x2-averaged frame blurred by j steps
of the a-trous cascade of [1, 2, 1] filters at spacings 1, 2, ..., 2**(j-1), then
bilinearly upsampled. Per axis, in full-resolution pixels^2, level j has variance
V_j = 4 (4**j - 1) / 6 + 1 (the 1 is the 2x2 average, 1/4, plus the bilinear upsample,
3/4): 1, 3, 11, 43, 171. A uniform disc of diameter c has per-axis variance c^2 / 16,
so each pixel blends the two levels that bracket its target variance, linearly in
variance: the blend is a kernel of exactly that variance, so the spread matches the
thin-lens CoC at every size, not only at the levels. (The blend of the half-resolution
levels is chosen per 2x2 block, from the block's mean variance, and the 2x2 average
can move light by up to half a pixel; on a plane of uniform depth the spread about
each pixel is exact.) At the focus distance the sharp level's weight is exactly 1 and
the pixel is returned unchanged.

Occlusion, the two artefacts of a plain gather, fixed cheaply:

- A sharp object must not bleed into the blurred background behind it: every source
  pixel enters the blurred levels with weight min(1, sigma) (sigma its own blur in
  pixels) and each level is normalised by the blurred weight, so in-focus pixels add
  nothing to anyone's blur.
- A blurred foreground object must spread over the sharp background: the pixels in
  front of the focus plane also form a premultiplied layer (colour x coverage,
  coverage), blurred with the largest foreground blur in each 16 x 16 tile and its
  neighbours, and composited over the result.

On a plane of uniform depth both reduce to the plain blur.
"""

from __future__ import annotations

import numpy as np

from hybrid.render.post.filters import blur2d, downsample2, upsample2
from hybrid.render.post.registry import Frame, PostError, register
from hybrid.render.post.spec import DepthOfField
from hybrid.render.post.workspace import scratch

_TILE = 16  # pixels per side of the tiles that carry the foreground blur beyond its silhouette


def focal_length_m(K: np.ndarray, height: int, sensor_height_mm: float) -> float:
    """Focal length in metres that gives K's vertical field of view on a sensor of that height."""
    return sensor_height_mm * 1e-3 * float(K[1, 1]) / height


def coc_diameter_px(
    depth_m: np.ndarray,
    K: np.ndarray,
    focus_distance_m: float,
    f_number: float,
    sensor_height_mm: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Thin-lens CoC diameter in pixels (module formula) of (H, W) z-depths in metres; 0 depth = infinity.

    ``out``, if given, receives the (H, W) float32 result.
    """
    depth_m = np.asarray(depth_m, dtype=np.float32)
    f = focal_length_m(K, depth_m.shape[0], sensor_height_mm)
    s = float(focus_distance_m)
    if s <= f:
        raise PostError(
            f"depth_of_field: focus_distance_m {s:g} m is not beyond the focal length {f:.4g} m "
            f"(from the field of view and sensor_height_mm {sensor_height_mm:g}); focus further away"
        )
    scale = float(K[1, 1]) * (f / f_number) * s / (s - f)
    inv_z = np.zeros(depth_m.shape, dtype=np.float32) if out is None else out
    inv_z[...] = 0.0
    np.divide(np.float32(1.0), depth_m, out=inv_z, where=depth_m > 0)
    inv_z -= np.float32(1.0 / s)
    np.abs(inv_z, out=inv_z)
    inv_z *= np.float32(scale)
    return inv_z


def level_variances(n_levels: int) -> list[float]:
    """Per-axis variance in full-resolution pixels^2 of the sharp level and half-resolution levels 0..n_levels-1.

    [0, 1, 3, 11, 43, ...]: the sharp frame, then 4 (4**j - 1) / 6 + 1 (module docstring).
    """
    return [0.0] + [4.0 * (4.0**j - 1.0) / 6.0 + 1.0 for j in range(n_levels)]


def levels_needed(max_var: float) -> int:
    """The fewest half-resolution levels whose top variance reaches ``max_var``."""
    n = 1
    while level_variances(n)[-1] < max_var:
        n += 1
    return n


def level_weights(var: np.ndarray, v: list[float]) -> list[np.ndarray | None]:
    """Hat weights, linear in variance, of each level of the ladder ``v`` for per-pixel variances ``var``.

    var: (h, w) within [v[0], v[-1]]. The weights sum to 1 per pixel; entry k is None
    where no pixel uses level k.
    """
    top = len(v) - 1
    if top == 0:
        return [np.ones_like(var)]
    out: list[np.ndarray | None] = []
    for k in range(top + 1):
        if k == 0:
            a = (np.float32(v[1]) - var) * np.float32(1.0 / (v[1] - v[0]))
        else:
            a = (var - np.float32(v[k - 1])) * np.float32(1.0 / (v[k] - v[k - 1]))
            if k < top:
                np.minimum(a, (np.float32(v[k + 1]) - var) * np.float32(1.0 / (v[k + 1] - v[k])), out=a)
        np.clip(a, 0.0, 1.0, out=a)
        out.append(a if a.any() else None)
    return out


def _tile_spread(sigma_near: np.ndarray) -> np.ndarray:
    """Per pixel, the largest foreground blur in its 16 x 16 tile and the 8 tiles around it (a new (H, W) array)."""
    h, w = sigma_near.shape
    th, tw = -(-h // _TILE), -(-w // _TILE)
    tiles = sigma_near
    if (th * _TILE, tw * _TILE) != (h, w):
        tiles = np.zeros((th * _TILE, tw * _TILE), dtype=np.float32)
        tiles[:h, :w] = sigma_near
    # 2x2 max pooling four times: 16 x 16 tiles, reading each pixel once.
    while tiles.shape[0] > th:
        rows = np.maximum(tiles[0::2], tiles[1::2])
        tiles = np.maximum(rows[:, 0::2], rows[:, 1::2])
    grown = np.pad(tiles, 1)
    spread = tiles.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            np.maximum(spread, grown[dy : dy + th, dx : dx + tw], out=spread)
    full = np.broadcast_to(spread[:, None, :, None], (th, _TILE, tw, _TILE)).reshape(th * _TILE, tw * _TILE)
    return np.ascontiguousarray(full[:h, :w])


@register(DepthOfField)
def depth_of_field(frame: Frame, params: DepthOfField, rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) linear light + depth (H, W) metres + K -> (3, H, W) defocused linear light."""
    if frame.depth is None or frame.K is None:
        missing = " and ".join(n for n, v in (("depth", frame.depth), ("K", frame.K)) if v is None)
        raise PostError(
            f"depth_of_field needs {missing}: pass depth= (float32 (H, W) z-depth in metres, 0 on background) "
            "and K= (3x3 intrinsics in pixels) to apply_chain"
        )
    rgb = frame.rgb
    depth = np.asarray(frame.depth, dtype=np.float32)
    if depth.shape != rgb.shape[-2:]:
        raise PostError(f"depth_of_field: depth has shape {depth.shape}, the frame {rgb.shape[-2:]}")
    shape = depth.shape
    sigma = coc_diameter_px(
        depth, frame.K, params.focus_distance_m, params.f_number, params.sensor_height_mm,
        out=scratch("depth_of_field.sigma", shape),
    )
    np.minimum(sigma, np.float32(params.max_coc_px), out=sigma)
    sigma *= np.float32(0.25)  # disc of diameter c: per-axis standard deviation c / 4
    if not sigma.any():
        return rgb
    near = (depth > 0) & (depth < params.focus_distance_m) & (sigma > 0)
    has_near = bool(near.any())
    half = ((shape[0] + 1) // 2, (shape[1] + 1) // 2)

    # Source layers at half resolution, premultiplied at full resolution so that a 2x2
    # average never mixes an in-focus pixel's colour into the blur: [rgb w, w] and,
    # with a foreground, [rgb m, m] with m = w on foreground pixels, 0 elsewhere.
    # (Built one layer pair at a time through one full-resolution buffer: memory
    # traffic, not arithmetic, is what costs here.)
    level = scratch("depth_of_field.level", (8 if has_near else 4,) + half)
    spare = scratch("depth_of_field.spare", level.shape)
    work = scratch("depth_of_field.work", (4,) + shape)
    w = np.minimum(sigma, np.float32(1.0), out=work[3])
    np.multiply(rgb, w, out=work[0:3])
    downsample2(work, out=level[0:4])
    if has_near:
        m = np.multiply(w, near, out=scratch("depth_of_field.m", shape))
        np.multiply(rgb, m, out=work[0:3])
        work[3] = m
        downsample2(work, out=level[4:8])
        var_spread = _tile_spread(np.multiply(sigma, near, out=scratch("depth_of_field.near", shape)))
        var_spread *= var_spread

    var = np.multiply(sigma, sigma, out=sigma)
    max_var = float(max(var.max(), var_spread.max() if has_near else 0.0))
    n_levels = levels_needed(max_var)
    blurred = level_variances(n_levels)[1:]  # the half-resolution ladder
    # Receivers: the half-resolution levels are chosen by the variance clamped to at
    # least V_0 = 1; the sharp level takes 1 - var / V_0 of the result.
    clamped = scratch("depth_of_field.clamped", shape)
    own = level_weights(downsample2(np.maximum(var, np.float32(1.0), out=clamped)), blurred)
    sharp = np.subtract(np.float32(1.0), var, out=var)
    np.maximum(sharp, np.float32(0.0), out=sharp)
    if has_near:
        spread_w = level_weights(downsample2(np.maximum(var_spread, np.float32(1.0), out=clamped)), blurred)
        sharp_near = np.subtract(np.float32(1.0), var_spread, out=var_spread)
        np.maximum(sharp_near, np.float32(0.0), out=sharp_near)

    # Blend the ladder per receiver: own colour F (normalised by the blurred weight),
    # and the foreground layer P (premultiplied) with its coverage A.
    # The plain 2x2 average stands in where no source in reach is blurred (weight ~ 0).
    fallback = np.multiply(level[0:3], np.float32(1e-4), out=scratch("depth_of_field.fallback", (3,) + half))
    blend = scratch("depth_of_field.blend", (7 if has_near else 3,) + half)
    blend[...] = 0.0
    color = scratch("depth_of_field.color", (3,) + half)
    norm = scratch("depth_of_field.norm", half)
    for j in range(n_levels):
        if j:
            step = 2 ** (j - 1)
            level, spare = blur2d(level, step, out=spare), level
        if own[j] is not None:
            np.add(level[0:3], fallback, out=color)
            np.add(level[3], np.float32(1e-4), out=norm)
            np.divide(own[j], norm, out=norm)
            color *= norm
            blend[0:3] += color
        if has_near and spread_w[j] is not None:
            np.multiply(level[4:7], spread_w[j], out=color)
            blend[3:6] += color
            np.multiply(level[7], spread_w[j], out=norm)
            blend[6] += norm

    # out = sharp * rgb + (1 - sharp) * U(F): written so that sharp = 1 gives rgb bit
    # for bit (rgb * 1 + U(F) * 0).
    # With a foreground layer over it, coverage alpha = sn m + (1 - sn) U(A) and
    # premultiplied colour sn m rgb + (1 - sn) U(P) (sn its sharp level's weight):
    #   out = rgb (sharp (1 - alpha) + sn m) + U(F) (1 - sharp) (1 - alpha) + U(P) (1 - sn)
    # with the per-pixel factors formed first, on one channel instead of three.
    rest = np.subtract(np.float32(1.0), sharp, out=clamped)
    if has_near:
        near_up = upsample2(blend[3:7], shape, out=scratch("depth_of_field.near_up", (4,) + shape))
        rest_near = np.subtract(np.float32(1.0), sharp_near, out=scratch("depth_of_field.rest_near", shape))
        transmit = near_up[3]  # becomes 1 - alpha
        transmit *= rest_near
        coef = np.multiply(m, sharp_near, out=m)
        transmit += coef
        np.subtract(np.float32(1.0), transmit, out=transmit)
        sharp *= transmit
        sharp += coef
        rest *= transmit
    up = upsample2(blend[0:3], shape, out=work[0:3])
    out = np.multiply(rgb, sharp, out=frame.out)
    up *= rest
    out += up
    if has_near:
        near_rgb = near_up[0:3]
        near_rgb *= rest_near
        out += near_rgb
    return out
