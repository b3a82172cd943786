"""Rendering: the rasterizer's per-frame buffers and exact optical flow.

- ``hybrid.render.raster.Rasterizer``: rgb, depth, instance, normal, albedo (GL).
- ``hybrid.render.flow``: flow_fwd / flow_bwd from depth, instance ids and poses
  (NumPy only).

``Rasterizer`` is imported lazily so that importing the flow module (or anything
else here that needs no GL) does not load pyrender or create a GL platform.
"""

from __future__ import annotations

__all__ = ["Rasterizer", "flow_between", "clip_flows"]


def __getattr__(name: str):
    if name == "Rasterizer":
        from hybrid.render.raster import Rasterizer

        return Rasterizer
    if name in ("flow_between", "clip_flows"):
        from hybrid.render import flow

        return getattr(flow, name)
    raise AttributeError(f"module 'hybrid.render' has no attribute {name!r}")
