"""The rgb buffer: pyrender's PBR forward pass with shadow maps, 4x multisampled.

This is pyrender's own colour pass. When every light of a shadowed type asks for
shadows it runs ``Renderer.render`` unchanged; when some do not (pyrender switches
shadows per light type, not per light), it runs the same steps itself (update the
context, shadow-map only the lights that ask, forward pass) and keeps the other
lights' shadow maps cleared to the far plane, which reads as "never in shadow".
"""

from __future__ import annotations

import numpy as np

from hybrid.render.gl import pyrender
from hybrid.render.scene_build import RenderScene


class BeautyPass:
    """The rgb pass for one ``RenderScene``; use with its GL context current."""

    def __init__(self, rs: RenderScene):
        self.flags = rs.shadow_flags | pyrender.RenderFlags.OFFSCREEN
        self._rs = rs
        self._cleared = False

    def draw(self, renderer: "pyrender.Renderer") -> np.ndarray:
        """rgb uint8 (H, W, 3), sRGB-encoded (pyrender's gamma 1/2.2 output), rows top-down."""
        rs = self._rs
        if not rs.shadowless:
            color, _ = renderer.render(rs.scene, self.flags)
            return color
        scene = rs.scene
        renderer._update_context(scene, self.flags)
        if not self._cleared:
            for node in rs.shadowless:
                # Binds the light's shadow map as the depth target and clears it to 1 (far).
                renderer._configure_shadow_mapping_viewport(node.light, self.flags)
            self._cleared = True
        shadowless = set(rs.shadowless)
        for node in scene.light_nodes:
            if node.light.shadow_texture is not None and node not in shadowless:
                renderer._shadow_mapping_pass(scene, node, self.flags)
        color, _ = renderer._forward_pass(scene, self.flags)
        return color
