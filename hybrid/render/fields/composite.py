"""Every field over the beauty pass: the liquid surface layered with the gas, heat haze, and the six field buffers.

Compositing (``FieldRenderer.composite``): with a liquid surface at depth t_l in
front of the opaque depth, behind = beauty T_back + L_back (the gas between t_l and
the opaque surface, ``hybrid.render.fields.gas``), the liquid shades that into a
surface colour (reflection, absorption: ``hybrid.render.fields.liquid``), and out =
surface T_front + L_front (the gas between the camera and t_l). Elsewhere out =
beauty T + L. Approximations: gas inside the liquid is treated like gas behind its
front surface; the liquid's refraction does not displace what is seen through it;
gas and liquid do not light or shadow each other.

Last, hot gas bends the view (``hybrid.render.fields.haze``): the composited frame is
resampled by the heat-haze shift, which the ``heat_haze`` buffer holds.

The G-buffer (depth, instance, normal, albedo) stays the rigid bodies': smoke and
liquid are translucent layers over it, so a body inside smoke or partly under
water keeps its instance id, depth and normal at every pixel where it is the first
opaque surface.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hybrid.fields.frames import FieldFrame, empty_field_buffers
from hybrid.render.fields.gas import GasMarcher
from hybrid.render.fields.lights import light_table
from hybrid.render.fields.liquid import LiquidTracer
from hybrid.render.materials import display_to_linear
from hybrid.scene.fields_spec import GasLook, LiquidLook
from hybrid.scene.spec import Scene


class FieldRenderer:
    """Composites a scene's fields over its HDR beauty frames and draws the six field buffers.

    Built once per rasterizer from the scene (intrinsics, lights, looks, background,
    ``frame_dt_sim`` for screen motion). Looks come from ``scene.fields``; a frame
    holding a field the scene does not declare is drawn with that field's default look.
    """

    def __init__(self, scene: Scene, K: np.ndarray):
        fields = scene.fields
        gas_look = fields.gas.look if fields is not None and fields.gas is not None else GasLook()
        liquid_look = fields.liquid.look if fields is not None and fields.liquid is not None else LiquidLook()
        ambient, lights = light_table(scene)
        self.width, self.height = scene.width, scene.height
        self.K = np.asarray(K, dtype=np.float64)
        self.haze = gas_look.heat_haze
        self.gas = GasMarcher(K, scene.width, scene.height, gas_look, ambient, lights, scene.frame_dt_sim)
        self.liquid = LiquidTracer(
            K, scene.width, scene.height, liquid_look, ambient, lights, display_to_linear(scene.background),
            scene.frame_dt_sim,
        )

    def composite(
        self,
        fields: Optional[FieldFrame],
        cam_to_world: np.ndarray,
        depth: np.ndarray,
        beauty: Optional[np.ndarray] = None,
    ) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
        """(beauty with the fields composited, float32 (H, W, 3) linear, or None without `beauty`; field buffers).

        depth: the G-buffer's (H, W) float32 z-depth in metres, 0 on background.
        Buffers (rows top-down): gas_density float32 (H, W), gas_temperature float32
        (H, W), liquid_mask uint8 (H, W), liquid_thickness float32 (H, W),
        fluid_velocity float32 (H, W, 2), heat_haze float32 (H, W, 2); zeros where a
        field is absent.
        """
        h, w = self.height, self.width
        buffers = empty_field_buffers(h, w)
        gas = fields.gas if fields is not None else None
        liquid = fields.liquid if fields is not None else None
        out = None if beauty is None else np.asarray(beauty, dtype=np.float32)
        hits = None
        if liquid is not None and liquid.count > 0:
            hits = self.liquid.trace(liquid, cam_to_world, depth)
            buffers["liquid_mask"] = hits.mask.astype(np.uint8)
            buffers["liquid_thickness"] = hits.thickness
        split = hits.split if hits is not None else None
        layers = self.gas.march(gas, cam_to_world, depth, split) if gas is not None else None
        if layers is not None:
            buffers["gas_density"] = layers.density
            buffers["gas_temperature"] = layers.temperature
            buffers["fluid_velocity"] = layers.motion
        if hits is not None:
            buffers["fluid_velocity"] = np.where(hits.mask[..., None], hits.motion, buffers["fluid_velocity"])
        if out is not None:
            behind = out
            if layers is not None:
                behind = out * layers.back_T[..., None] + layers.back_L
            if hits is not None:
                behind = self.liquid.shade(hits, behind, cam_to_world)
            if layers is not None:
                behind = behind * layers.front_T[..., None] + layers.front_L
            out = np.ascontiguousarray(behind, dtype=np.float32)
        if gas is not None and self.haze:
            from hybrid.render.fields.haze import bend, haze_shift

            shift = haze_shift(gas, self.K, cam_to_world, depth)
            buffers["heat_haze"] = shift
            if out is not None:
                out = bend(out, shift)
        return out, buffers
