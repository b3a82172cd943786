"""Full-resolution frames from a working-resolution prediction, guided by the exact buffers.

The diffusion model works at a few thousand to tens of thousands of pixels; the clip's
exact buffers (albedo, normal, depth, instance) are at its full resolution. This module
brings a low-resolution image up to full resolution without blurring across the edges
those buffers know about: joint bilateral upsampling (Kopf, Cohen, Lischinski and
Uyttendaele, SIGGRAPH 2007), with the instance id as a hard term.

Each full-resolution pixel p takes a weighted mean of the low-resolution pixels q in
the ``taps`` x ``taps`` block around its position on the low grid:

    w(p, q) = exp(-|u_p - q|^2 / (2 s^2))                          spatial, low pixels
            x exp(-sum_k |g_k(p) - g_k(q)|^2 / (2 sigma_k^2))        range, per guide
            x [id(p) == id(q)]                                       same object

where g(q) and id(q) are the guides at the centre of low pixel q: the very point the
model saw there (its conditions are point-sampled at pixel centres, see
``hybrid.neural.conditioning``). Where no tap of the block shows p's object (an object
thinner than a low pixel), the instance term is dropped for that pixel so it still gets
the best match by the other guides.

``detail_transfer`` is how the neural renderer uses it: the model predicts the
path-traced frame at working resolution; its difference from the raster beauty at the
same resolution is the low-frequency correction (indirect light, soft shadows,
reflections, volumes), which is upsampled with the guides and added to the raster
beauty at full resolution. Texture, albedo edges and silhouettes come from the raster
frame, exactly; the model cannot repaint them.

Cost: taps^2 gathers of every guide per full-resolution pixel, linear in the output's
pixel count, independent of the working resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np
import torch

from hybrid.neural.conditioning import depth_channel, resize_nearest


@dataclass(frozen=True)
class GuideScales:
    """How far apart two surfaces' guides are before they stop sharing a value (the sigma_k above).

    albedo: in sRGB bytes / 255; normal: unit-vector distance; depth: in the depth
    channel (``conditioning.depth_channel``; 0.02 there is about 10 % of the distance at 1 m);
    spatial: in low-resolution pixels.
    """

    albedo: float = 0.1
    normal: float = 0.25
    depth: float = 0.02
    spatial: float = 1.0


def guide_channels(buffers: Mapping[str, np.ndarray], scales: GuideScales = GuideScales()) -> np.ndarray:
    """float32 (T, G, H, W): the guides, each divided by its scale, so range distance is plain Euclidean.

    Uses whichever of albedo, normal and depth the clip has (at least one is needed).
    """
    parts = []
    if "albedo" in buffers:
        parts.append(np.asarray(buffers["albedo"], np.float32).transpose(0, 3, 1, 2) / (255.0 * scales.albedo))
    if "normal" in buffers:
        parts.append(np.nan_to_num(np.asarray(buffers["normal"], np.float32)).transpose(0, 3, 1, 2) / scales.normal)
    if "depth" in buffers:
        parts.append((depth_channel(buffers["depth"]) / scales.depth)[:, None])
    if not parts:
        raise ValueError("guided upsampling needs at least one of the albedo, normal and depth buffers")
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def _low_coords(full: int, low: int, taps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each full pixel: the low-grid indices of its `taps` neighbours (clamped) and their distances."""
    u = (torch.arange(full, dtype=torch.float64) + 0.5) * low / full - 0.5  # position on the low grid
    first = torch.floor(u).long() - (taps // 2 - 1)
    idx = first[:, None] + torch.arange(taps)[None, :]  # (full, taps)
    dist = (idx.double() - u[:, None]).float()
    return idx.clamp(0, low - 1), dist


def joint_bilateral_upsample(
    low: np.ndarray,
    guides: np.ndarray,
    instance: Optional[np.ndarray] = None,
    *,
    spatial: float = 1.0,
    taps: int = 4,
) -> np.ndarray:
    """float32 (T, C, H, W): `low` (T, C, h, w) brought to the guides' (H, W).

    guides: (T, G, H, W) full-resolution guides already divided by their scales
    (``guide_channels``); instance: (T, H, W) integer ids or None; spatial: the
    spatial sigma in low pixels; taps: the block size per axis (even, >= 2).
    """
    if taps < 2 or taps % 2:
        raise ValueError(f"taps must be even and at least 2, got {taps}")
    low_t = torch.from_numpy(np.ascontiguousarray(low, dtype=np.float32))
    frames, channels, h, w = low_t.shape
    height, width = guides.shape[2:]
    g_full = torch.from_numpy(np.ascontiguousarray(guides, dtype=np.float32))
    g_low = torch.from_numpy(np.ascontiguousarray(resize_nearest(guides.transpose(0, 2, 3, 1), (h, w)).transpose(0, 3, 1, 2)))
    if instance is not None:
        id_full = torch.from_numpy(np.asarray(instance, dtype=np.int64))
        id_low = torch.from_numpy(resize_nearest(np.asarray(instance, dtype=np.int64), (h, w)))
    rows, dy = _low_coords(height, h, taps)
    cols, dx = _low_coords(width, w, taps)
    # Per tap (a, b): the flat low-grid index each full pixel reads, and its spatial weight.
    flat = [(rows[:, a, None] * w + cols[None, :, b]).reshape(-1) for a in range(taps) for b in range(taps)]
    spatial_w = [
        torch.exp(-(dy[:, a, None] ** 2 + dx[None, :, b] ** 2) / (2 * spatial**2)).reshape(-1)
        for a in range(taps)
        for b in range(taps)
    ]
    out = torch.empty((frames, channels, height * width), dtype=torch.float32)
    chunk = max(1, 2_000_000 // (height * width))  # frames per pass: bounded memory at any size
    for t0 in range(0, frames, chunk):
        sl = slice(t0, min(frames, t0 + chunk))
        v_low = low_t[sl].reshape(-1, channels, h * w)
        g_lo = g_low[sl].reshape(v_low.shape[0], -1, h * w)
        g_hi = g_full[sl].reshape(v_low.shape[0], -1, height * width)
        n = v_low.shape[0]
        num = torch.zeros((n, channels, height * width))
        den = torch.zeros((n, height * width))
        num_any, den_any = num.clone(), den.clone()
        if instance is not None:
            i_lo = id_low[sl].reshape(n, h * w)
            i_hi = id_full[sl].reshape(n, height * width)
        for index, sw in zip(flat, spatial_w):
            value = v_low[:, :, index]
            weight = sw * torch.exp(-0.5 * ((g_hi - g_lo[:, :, index]) ** 2).sum(1))
            num_any += weight[:, None] * value
            den_any += weight
            if instance is not None:
                same = weight * (i_lo[:, index] == i_hi)
                num += same[:, None] * value
                den += same
        if instance is None:
            num, den = num_any, den_any
        else:
            alone = den <= 0  # no tap shows this pixel's object: drop the instance term here
            num = torch.where(alone[:, None], num_any, num)
            den = torch.where(alone, den_any, den)
        # Where every tap differs wildly by the guides the weights underflow: the spatial
        # term alone is the fallback (rare, so summed only when needed).
        tiny = den <= 1e-30
        if tiny.any():
            num_s = sum(sw * v_low[:, :, index] for index, sw in zip(flat, spatial_w))
            den_s = sum(spatial_w)
            num = torch.where(tiny[:, None], num_s, num)
            den = torch.where(tiny, den_s, den)
        out[sl] = num / den[:, None]
    return out.reshape(frames, channels, height, width).numpy()


def detail_transfer(
    predicted_low: np.ndarray,
    raster_low: np.ndarray,
    raster_full: np.ndarray,
    buffers: Mapping[str, np.ndarray],
    scales: GuideScales = GuideScales(),
    temporal_blend: float = 1.0,
) -> np.ndarray:
    """float32 (T, 3, H, W) in [-1, 1]: raster_full + the guided upsampling of (predicted_low - raster_low).

    predicted_low, raster_low: (T, 3, h, w) in the model's [-1, 1] sRGB range (the raster
    frame resized as the model saw it); raster_full: (T, 3, H, W); buffers: the clip's
    full-resolution exact buffers (albedo, normal, depth, instance; with temporal_blend < 1
    also flow_bwd and flow_fwd, along which the correction is carried from frame to frame,
    ``hybrid.neural.temporal``).
    """
    guides = guide_channels(buffers, scales)
    correction = joint_bilateral_upsample(
        np.asarray(predicted_low, np.float32) - np.asarray(raster_low, np.float32),
        guides,
        buffers.get("instance"),
        spatial=scales.spatial,
    )
    if temporal_blend < 1.0:
        from hybrid.neural.temporal import carry_along_flow
        from hybrid.render.warp import covisible_clip

        missing = [b for b in ("flow_bwd", "flow_fwd", "instance") if b not in buffers]
        if missing:
            raise ValueError(f"temporal_blend < 1 carries the correction along the flow; the clip lacks {', '.join(missing)}")
        flow_bwd = np.asarray(buffers["flow_bwd"], np.float32)
        visible = covisible_clip(flow_bwd, np.asarray(buffers["flow_fwd"], np.float32), np.asarray(buffers["instance"]))
        correction = carry_along_flow(correction, flow_bwd, visible, temporal_blend)
    exact = raster_is_exact(buffers)
    if exact is not None:
        correction = np.where(exact[:, None], np.float32(0.0), correction)
    return np.clip(np.asarray(raster_full, np.float32) + correction, -1.0, 1.0)


# Smoke along a ray below this (concentration x m) changes the background by under a
# thousandth even at an extinction of 100 per unit concentration (exp(-1e-3) = 0.999):
# under a third of an 8-bit code. Gas this much above ambient (K) glows not at all
# (blackbody emission is visible from about 800 K).
GAS_CLEAR = 1e-5
GAS_WARM_K = 1.0


def raster_is_exact(buffers: Mapping[str, np.ndarray]) -> Optional[np.ndarray]:
    """bool (T, H, W): pixels whose raster frame is already the path tracer's, or None without ids.

    Where a camera ray meets no surface (instance 0) and no smoke, fire or liquid lies in
    front, both back ends draw the background colour or the environment from one radiance
    function (hybrid.render.environment), so a correction there could only add error.
    Smoke thinner than GAS_CLEAR along the ray and gas less than GAS_WARM_K above ambient
    count as none: the solver leaves such traces (1e-18 and less) far from any plume.
    """
    if "instance" not in buffers:
        return None
    exact = np.asarray(buffers["instance"]) == 0
    if "gas_density" in buffers:
        exact &= np.asarray(buffers["gas_density"]) < GAS_CLEAR
    if "gas_temperature" in buffers:
        exact &= np.asarray(buffers["gas_temperature"]) < GAS_WARM_K
    if "liquid_mask" in buffers:
        exact &= np.asarray(buffers["liquid_mask"]) == 0
    return exact
