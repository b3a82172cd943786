"""The beauty pass: PBR lighting with shadow maps, 4x multisampled, as linear HDR float radiance.

pyrender's own colour pass clamps to 0..1, applies gamma 1/2.2 and stores 8 bits, so
anything brighter than white is lost before exposure, bloom or tone mapping could see
it. This pass keeps pyrender for everything around the shading (uploading meshes and
textures, the shadow-map passes, binding lights and materials) and replaces the
forward pass: our shaders (``shaders/beauty.{vert,frag}``, the same shading model
under pyrender's uniform names) write unclamped linear radiance into a multisampled
RGBA16F target (``hdr_target.HDRTarget``), read back as float32.

- ``draw_hdr``: float32 (H, W, 3) scene-linear radiance, for the post chain.
- ``draw``: the uint8 ``rgb`` buffer, that radiance clamped to 0..1 and encoded
  with the 1/2.2 power curve pyrender used (``encode_display``), so a scene rendered
  without post effects looks as it always did. Inside surfaces it matches pyrender's
  8-bit pass to within one code; along anti-aliased edges (and where a highlight
  crosses 1 inside a pixel) it is up to a few tens of codes brighter, because the 4
  samples are now averaged in linear light and clipped after averaging, rather than
  clipped, encoded and averaged as bytes (the encoded average of light is never below
  the average of encoded values: min(x, 1) ** (1/2.2) is concave).

Shadows follow the lights: pyrender switches shadows per light type, so when some
lights of a shadowed type do not ask for them their shadow maps are cleared once to
the far plane, which reads as "never in shadow", and never redrawn.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from hybrid.render.environment import background_radiance
from hybrid.render.gl import pyrender
from hybrid.render.gl import pyrender_renderer
from hybrid.render.hdr_target import HDRTarget
from hybrid.render.materials import DISPLAY_GAMMA, display_to_linear
from hybrid.render.scene_build import RenderScene
from hybrid.render.shadow_fit import fitted_shadow_camera, world_boxes
from hybrid.transforms import CV_TO_GL

SHADER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shaders")


def _coverage_blend(source: int, destination: int) -> None:
    """pyrender's blend function, with the alpha channel (coverage) composited as a + (1 - a) behind."""
    from OpenGL import GL

    alpha_source = GL.GL_ONE if source == GL.GL_SRC_ALPHA else source
    GL.glBlendFuncSeparate(source, destination, alpha_source, destination)


def encode_display(linear: np.ndarray) -> np.ndarray:
    """Linear radiance float (..., 3) -> the rgb buffer's bytes: round(255 clip(x, 0, 1) ** (1 / 2.2)), uint8.

    The 2.2 power curve (not the sRGB curve) is the one pyrender's pass ended with and
    the inverse of how ``materials`` decodes colours, so a matte surface under unit white
    ambient light alone shows its own colour (plus the ambient light's specular
    reflection, ``shaders/beauty.frag``).
    """
    x = np.clip(linear, 0.0, 1.0).astype(np.float32, copy=False)
    np.power(x, np.float32(1.0 / DISPLAY_GAMMA), out=x)
    x *= np.float32(255.0)
    x += np.float32(0.5)  # x lies in [0.5, 255.5]: truncation rounds
    return x.astype(np.uint8)


# Defines that pyrender derives from a primitive and its material, and that
# beauty.frag implements. Attribute locations it does not read (tangents, a second uv
# set, skinning) are accepted: pyrender only numbers them.
_SUPPORTED_DEFINES = frozenset(
    {
        "NORMAL_LOC", "TANGENT_LOC", "TEXCOORD_0_LOC", "TEXCOORD_1_LOC", "COLOR_0_LOC", "JOINTS_0_LOC",
        "WEIGHTS_0_LOC", "INST_M_LOC", "MAX_DIRECTIONAL_LIGHTS", "MAX_SPOT_LIGHTS", "MAX_POINT_LIGHTS",
        "DIRECTIONAL_LIGHT_SHADOWS", "SPOT_LIGHT_SHADOWS", "USE_METALLIC_MATERIAL", "HAS_BASE_COLOR_TEX",
        "HAS_EMISSIVE_TEX", "HAS_OCCLUSION_TEX",
    }
)


class BeautyPrograms(pyrender.shader_program.ShaderProgramCache):
    """pyrender's shader cache, pointed at the HDR shaders.

    While the beauty pass draws, it stands in for ``Renderer._program_cache``: pyrender
    asks for its mesh shader by name with the defines it derived (attribute locations,
    light counts, shadows, textures), and gets ``beauty.vert`` / ``beauty.frag``
    compiled with those same defines.
    """

    _NAMES = {"mesh.vert": "beauty.vert", "mesh.frag": "beauty.frag"}

    def __init__(self, extra_defines: Optional[dict] = None) -> None:
        super().__init__(shader_dir=SHADER_DIR)
        # Defines of the scene rather than the primitive (HAS_ENVIRONMENT), added to pyrender's.
        self._extra = dict(extra_defines or {})

    def get_program(self, vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        if vertex_shader not in self._NAMES or fragment_shader not in self._NAMES or geometry_shader is not None:
            raise RuntimeError(
                f"the HDR beauty pass only replaces pyrender's mesh shader, but pyrender asked for "
                f"{vertex_shader}, {fragment_shader}" + (f", {geometry_shader}" if geometry_shader else "")
            )
        unsupported = sorted(set(defines or {}) - _SUPPORTED_DEFINES)
        if unsupported:
            raise ValueError(
                f"the HDR beauty pass draws hybrid's materials (base colour factor and texture, metallic and "
                f"roughness factors, emission, occlusion) with directional and spot light shadows; this primitive "
                f"also needs {', '.join(unsupported)}, which it does not implement"
            )
        defines = {**(defines or {}), **self._extra}
        return super().get_program(self._NAMES[vertex_shader], self._NAMES[fragment_shader], None, defines)


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


def _draw_order(rs: RenderScene, cam_pos: np.ndarray) -> list:
    """The scene's meshes (``rs.object_nodes``, all of them) in pyrender's drawing order: opaque before
    transparent, each farthest first; at equal distances in the scene's order, not in the address order
    of pyrender's node set (with depth ties the first drawn surface keeps the pixel).
    """

    def key(node):
        return (bool(node.mesh.is_transparent), -np.linalg.norm(rs.scene.get_pose(node)[:3, 3] - cam_pos))

    return sorted((node for node in rs.object_nodes if node is not None), key=key)


class _LightsInOrder:
    """A pyrender scene as ``Renderer._bind_lighting`` reads it, but with ``light_nodes`` a list in the scene's order.

    pyrender fills the shader's light arrays in the iteration order of
    ``Scene.light_nodes``, a set of nodes hashed by memory address, and the shader
    sums the lights in array order. Float addition is not associative, so without a
    fixed order a pixel's radiance (and now and then its rgb byte) would depend on
    what the process had allocated before: the same clip rendered first in a fresh
    worker and after other clips would differ in the last bits. Everything else is
    the scene's own.
    """

    def __init__(self, scene: "pyrender.Scene", light_nodes: list):
        self._scene = scene
        self.light_nodes = list(light_nodes)

    def __getattr__(self, name):
        return getattr(self._scene, name)


class BeautyPass:
    """The beauty pass for one ``RenderScene`` at ``width`` x ``height`` pixels.

    Create, draw and ``delete`` it with its GL context current. Raises
    ``RenderSetupError`` when the driver has no multisampled float render targets.
    """

    def __init__(self, rs: RenderScene, width: int, height: int):
        self.flags = rs.shadow_flags | pyrender.RenderFlags.OFFSCREEN
        self._rs = rs
        self._cleared = False
        # pyrender cleared its 8-bit target with the display colour; in linear light that
        # is the colour decoded, which encode_display turns back into the same bytes.
        self._background = display_to_linear(rs.background)
        env = rs.environment
        self._programs = BeautyPrograms({"HAS_ENVIRONMENT": 1} if env is not None else None)
        # A visible environment is composited behind the surfaces after the pass: the
        # target is cleared transparent, so the resolved alpha is each pixel's coverage.
        self._env_behind = env if env is not None and env.visible else None
        self._target = HDRTarget(width, height)

    def delete(self) -> None:
        """Free the render target and the compiled programs (the context must be current)."""
        self._target.delete()
        self._programs.clear()

    def draw(self, renderer: "pyrender.Renderer") -> np.ndarray:
        """rgb uint8 (H, W, 3): ``draw_hdr`` encoded for display by ``encode_display``, rows top-down."""
        return encode_display(self.draw_hdr(renderer))

    def draw_hdr(self, renderer: "pyrender.Renderer") -> np.ndarray:
        """float32 (H, W, 3) linear radiance (scene units, unclamped, >= 0), rows top-down.

        Background pixels hold the background colour decoded to linear light, or with a
        visible environment its radiance along the pixel's centre ray, blended with the
        surfaces by their coverage of the pixel (4 samples). With soft
        lights (directional lights of non-zero angular size) the pass runs once per
        sample with each such light tilted to a point of its disc (a Vogel spiral, the
        same points every frame) and the float renders are averaged: each sample's
        shadow map sees the occluders from a slightly different direction, which is
        what an area light's penumbra is.
        """
        rs = self._rs
        if not rs.soft_lights:
            return self._draw_once(renderer)
        n = rs.soft_samples
        total = None
        golden = np.pi * (3.0 - np.sqrt(5.0))
        try:
            for i in range(n):
                r = np.sqrt((i + 0.5) / n)
                phi = i * golden
                for node, base, half_angle in rs.soft_lights:
                    rs.scene.set_pose(node, base @ _tilt(half_angle * r, phi))
                radiance = self._draw_once(renderer)
                total = radiance.astype(np.float64) if total is None else total + radiance
        finally:
            for node, base, _ in rs.soft_lights:
                rs.scene.set_pose(node, base)
        return (total / n).astype(np.float32)

    def _draw_once(self, renderer: "pyrender.Renderer") -> np.ndarray:
        """Shadow maps, then the forward pass into the float target; float32 (H, W, 3) linear."""
        rs = self._rs
        scene = rs.scene
        renderer._update_context(scene, self.flags)  # uploads meshes, textures, shadow maps
        if rs.shadowless and not self._cleared:
            for node in rs.shadowless:
                # Binds the light's shadow map as the depth target and clears it to 1 (far).
                renderer._configure_shadow_mapping_viewport(node.light, self.flags)
            self._cleared = True
        shadowless = set(rs.shadowless)
        self._fit_shadow_cameras(renderer)
        for node in rs.light_nodes:
            if node.light.shadow_texture is not None and node not in shadowless:
                renderer._shadow_mapping_pass(scene, node, self.flags)
        return self._forward(renderer)

    def _fit_shadow_cameras(self, renderer: "pyrender.Renderer") -> None:
        """Directional lights' shadow cameras fitted to the casters (``shadow_fit``), for the shadow
        passes and the lighting uniforms alike; other lights keep pyrender's."""
        boxes = world_boxes(self._rs.scene)
        default = type(renderer)._get_light_cam_matrices.__get__(renderer)
        fitted: dict = {}  # per light node, for this draw: pyrender asks once per primitive drawn

        def light_cam_matrices(scene, light_node, flags):
            if isinstance(light_node.light, pyrender.DirectionalLight):
                if light_node not in fitted:
                    direction = -scene.get_pose(light_node)[:3, 2]
                    fitted[light_node] = fitted_shadow_camera(boxes, direction, pyrender.constants.SHADOW_TEX_SZ)
                if fitted[light_node] is not None:
                    return fitted[light_node]
            return default(scene, light_node, flags)

        renderer._get_light_cam_matrices = light_cam_matrices

    def _forward(self, renderer: "pyrender.Renderer") -> np.ndarray:
        """pyrender's forward pass, step for step, with our program cache and into our target."""
        rs = self._rs
        scene = rs.scene
        if self._env_behind is not None:
            self._target.begin(np.zeros(3), clear_alpha=0.0)
        else:
            self._target.begin(self._background)
        view, projection = renderer._get_camera_matrices(scene)
        cam_pos = scene.get_pose(scene.main_camera_node)[:3, 3]
        lights = _LightsInOrder(scene, rs.light_nodes)
        use_material = pyrender.constants.ProgramFlags.USE_MATERIAL
        pyrender_programs, renderer._program_cache = renderer._program_cache, self._programs
        program = None
        # pyrender blends transparent materials with (SRC_ALPHA, ONE_MINUS_SRC_ALPHA) for colour and
        # alpha alike; the alpha channel is our coverage (hdr_target), which must add up as
        # a + (1 - a) a_behind, so while we draw its blend takes (ONE, ONE_MINUS_SRC_ALPHA).
        pyrender_blend = pyrender_renderer.glBlendFunc
        pyrender_renderer.glBlendFunc = _coverage_blend
        try:
            for node in _draw_order(rs, cam_pos):
                if not node.mesh.is_visible:
                    continue
                pose = scene.get_pose(node)
                for primitive in node.mesh.primitives:
                    program = renderer._get_primitive_program(primitive, self.flags, use_material)
                    program._bind()
                    program.set_uniform("V", view)
                    program.set_uniform("P", projection)
                    program.set_uniform("cam_pos", cam_pos)
                    renderer._bind_lighting(lights, program, node, self.flags)
                    if rs.environment_sh is not None:
                        for k, coefficient in enumerate(rs.environment_sh):
                            program.set_uniform(f"env_sh[{k}]", coefficient)
                    renderer._bind_and_draw_primitive(primitive=primitive, pose=pose, program=program, flags=self.flags)
                    renderer._reset_active_textures()
        finally:
            pyrender_renderer.glBlendFunc = pyrender_blend
            renderer._program_cache = pyrender_programs
            if program is not None:
                program._unbind()
        if self._env_behind is None:
            return self._target.resolve()
        radiance, coverage = self._target.resolve(coverage=True)
        camera = rs.camera_node.camera
        K = np.array([[camera.fx, 0.0, camera.cx], [0.0, camera.fy, camera.cy], [0.0, 0.0, 1.0]])
        cam_to_world = scene.get_pose(rs.camera_node) @ CV_TO_GL  # pyrender poses cameras in OpenGL axes
        h, w = coverage.shape
        behind = background_radiance(self._env_behind, K, cam_to_world, w, h)
        return (radiance + (1.0 - coverage)[..., None] * behind).astype(np.float32)
