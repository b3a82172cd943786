"""Smoke, fire and liquid in the beauty pass and the field buffers (Taichi kernels, CPU-friendly).

- ``rays``: the camera rays, ray/box spans and grid sampling the kernels share;
- ``lights``: the scene's lights as rows the kernels read, and the spot-light cone;
- ``gas``: ``GasMarcher``, the gas grid ray marched per pixel;
- ``liquid``: ``LiquidTracer``, the liquid's iso-surface traced and shaded per pixel;
- ``composite``: ``FieldRenderer``, every field layered over the HDR beauty frame.

The submodules import Taichi; nothing here is imported until a scene has fields.
"""
