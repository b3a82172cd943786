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


PYRENDER_GAMMA = 2.2  # pyrender's output curve: bytes = 255 * linear ** (1 / 2.2)


def _frame_shape(renderer: "pyrender.Renderer") -> tuple[int, int]:
    return (int(renderer.viewport_height), int(renderer.viewport_width))


def _tilt(angle: float, azimuth: float) -> np.ndarray:
    """4x4 rotation tilting local z by `angle` towards local direction `azimuth` (radians)."""
    axis = np.array([-np.sin(azimuth), np.cos(azimuth), 0.0])
    c, s = np.cos(angle), np.sin(angle)
    x, y, z = axis
    rot = np.array(
        [
            [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
            [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
            [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
        ]
    )
    m = np.eye(4)
    m[:3, :3] = rot
    return m


class BeautyPass:
    """The rgb pass for one ``RenderScene``; use with its GL context current."""

    def __init__(self, rs: RenderScene):
        self.flags = rs.shadow_flags | pyrender.RenderFlags.OFFSCREEN
        self._rs = rs
        self._cleared = False

    def draw(self, renderer: "pyrender.Renderer") -> np.ndarray:
        """rgb uint8 (H, W, 3), sRGB-encoded (pyrender's gamma 1/2.2 output), rows top-down.

        With soft lights (directional lights of non-zero angular size) the pass runs
        once per sample with each such light tilted to a point of its disc (a Vogel
        spiral, the same points every frame) and the renders are averaged in linear
        light: each sample's shadow map sees the occluders from a slightly different
        direction, which is what an area light's penumbra is.
        """
        rs = self._rs
        if not rs.soft_lights:
            return self._draw_once(renderer)
        n = rs.soft_samples
        total = np.zeros((*_frame_shape(renderer), 3), dtype=np.float64)
        golden = np.pi * (3.0 - np.sqrt(5.0))
        try:
            for i in range(n):
                r = np.sqrt((i + 0.5) / n)
                phi = i * golden
                for node, base, half_angle in rs.soft_lights:
                    rs.scene.set_pose(node, base @ _tilt(half_angle * r, phi))
                color = self._draw_once(renderer)
                total += (color.astype(np.float64) / 255.0) ** PYRENDER_GAMMA
        finally:
            for node, base, _ in rs.soft_lights:
                rs.scene.set_pose(node, base)
        return np.round(255.0 * (total / n) ** (1.0 / PYRENDER_GAMMA)).astype(np.uint8)

    def _draw_once(self, renderer: "pyrender.Renderer") -> np.ndarray:
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
