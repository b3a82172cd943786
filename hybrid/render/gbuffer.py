"""The G-buffer pass: depth, instance, normal and albedo in one unlit draw of the scene.

One geometry pass into an offscreen framebuffer with two colour targets, without
multisampling (every buffer is the surface seen through the pixel centre, never a
blend of two surfaces):

- target 0, RGBA float32: unit normal in camera OpenCV axes (x, y, z) and the
  z-depth in metres (w), written from the interpolated camera-space position, so no
  depth-buffer quantisation or near/far linearisation is involved.
- target 1, RGBA uint16: albedo bytes (r, g, b) and the instance id (a): integers,
  exact by construction.

Shaders live in ``shaders/gbuffer.{vert,frag}`` and are compiled through pyrender's
``ShaderProgramCache`` with pyrender's attribute layout, so the pass draws pyrender's
own vertex arrays. Buffer contract (DESIGN.md): depth 0, instance 0 and normal 0 on
background; background albedo is the scene's background colour.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from hybrid.render.gl import GL, pyrender, read_pixels_into
from hybrid.render.scene_build import RenderScene
from hybrid.transforms import CV_TO_GL

SHADER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shaders")

# pyrender numbers vertex attributes in this order, skipping absent buffers.
_ATTRIBUTE_ORDER = (
    ("NORMAL", "NORMAL_LOC"),
    ("TANGENT", "TANGENT_LOC"),
    ("TEXCOORD_0", "TEXCOORD_0_LOC"),
    ("TEXCOORD_1", "TEXCOORD_1_LOC"),
    ("COLOR_0", "COLOR_0_LOC"),
    ("JOINTS_0", "JOINTS_0_LOC"),
    ("WEIGHTS_0", "WEIGHTS_0_LOC"),
)


def _attribute_defines(primitive) -> dict[str, int]:
    flags = primitive.buf_flags
    defines: dict[str, int] = {}
    loc = 1
    for flag_name, define in _ATTRIBUTE_ORDER:
        if flags & getattr(pyrender.constants.BufFlags, flag_name):
            defines[define] = loc
            loc += 1
    defines["INST_M_LOC"] = loc
    return defines


class GBufferPass:
    """Framebuffer and shaders of the G-buffer pass; create and use with its GL context current."""

    def __init__(self, width: int, height: int):
        self.width, self.height = int(width), int(height)
        self._programs = pyrender.shader_program.ShaderProgramCache(shader_dir=SHADER_DIR)
        self._uniform_locations: dict[int, dict[str, int]] = {}
        self._fbo = GL.glGenFramebuffers(1)
        self._rbos = list(GL.glGenRenderbuffers(3))
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._fbo)
        formats = (GL.GL_RGBA32F, GL.GL_RGBA16UI, GL.GL_DEPTH_COMPONENT32F)
        attachments = (GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1, GL.GL_DEPTH_ATTACHMENT)
        for rbo, fmt, attachment in zip(self._rbos, formats, attachments):
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rbo)
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, self.width, self.height)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, attachment, GL.GL_RENDERBUFFER, rbo)
        GL.glDrawBuffers(2, [GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1])
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            self.delete()
            raise RuntimeError(f"the G-buffer framebuffer is incomplete (GL status 0x{int(status):x})")
        # Readback targets, reused every frame (rows bottom-up as GL stores them).
        self._geometry = np.empty((self.height, self.width, 4), dtype=np.float32)
        self._labels = np.empty((self.height, self.width, 4), dtype=np.uint16)

    def delete(self) -> None:
        """Free the framebuffer, renderbuffers and programs (its context must be current)."""
        if self._fbo is not None:
            GL.glDeleteFramebuffers(1, [self._fbo])
            GL.glDeleteRenderbuffers(len(self._rbos), self._rbos)
            self._programs.clear()
            self._uniform_locations.clear()
            self._fbo = None

    def _program(self, primitive, textured: bool):
        defines = _attribute_defines(primitive)
        if textured:
            defines["HAS_BASE_COLOR_TEX"] = 1
        program = self._programs.get_program(
            vertex_shader="gbuffer.vert", fragment_shader="gbuffer.frag", defines=defines
        )
        if not program._in_context():
            program._add_to_context()
        return program

    def _locations(self, program) -> dict[str, int]:
        """Uniform locations of a linked program, looked up once."""
        key = program._program_id
        if key not in self._uniform_locations:
            names = ("model_view", "normal_matrix", "projection", "instance_id", "base_color", "base_color_texture")
            self._uniform_locations[key] = {n: GL.glGetUniformLocation(key, n) for n in names}
        return self._uniform_locations[key]

    def draw(self, rs: RenderScene, world_to_cam: np.ndarray, projection_gl: np.ndarray) -> dict[str, np.ndarray]:
        """Draw the scene and read back depth, instance, normal and albedo (see module docstring).

        world_to_cam: (4, 4) world -> OpenCV camera. projection_gl: (4, 4) OpenGL
        projection of the scene camera (pyrender's, for the same viewport).
        Returns depth float32 (H, W), instance uint16 (H, W), normal float32
        (H, W, 3), albedo uint8 (H, W, 3), rows top-down.
        """
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._fbo)
        GL.glViewport(0, 0, self.width, self.height)
        GL.glDisable(GL.GL_BLEND)
        GL.glDisable(GL.GL_MULTISAMPLE)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthMask(GL.GL_TRUE)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glPolygonMode(GL.GL_FRONT_AND_BACK, GL.GL_FILL)
        GL.glClearBufferfv(GL.GL_COLOR, 0, np.zeros(4, dtype=np.float32))
        bg = np.floor(np.clip(rs.background, 0.0, 1.0) * 255.0 + 0.5)
        GL.glClearBufferuiv(GL.GL_COLOR, 1, np.array([*bg, 0], dtype=np.uint32))
        GL.glClearBufferfv(GL.GL_DEPTH, 0, np.ones(1, dtype=np.float32))

        projection = (projection_gl @ CV_TO_GL).astype(np.float32)
        for index, node in rs.drawn_nodes():
            mesh = node.mesh
            if not mesh.is_visible:
                continue
            model_view = world_to_cam @ rs.scene.get_pose(node)
            normal_matrix = np.linalg.inv(model_view[:3, :3]).T
            for primitive in mesh.primitives:
                surface = rs.surface_for(index, primitive)
                textured = surface.texture is not None
                program = self._program(primitive, textured)
                program._bind()
                loc = self._locations(program)
                # Set directly: pyrender's set_uniform swallows errors and sends a mat3 as a mat4.
                GL.glUniformMatrix4fv(loc["model_view"], 1, GL.GL_TRUE, model_view.astype(np.float32))
                GL.glUniformMatrix3fv(loc["normal_matrix"], 1, GL.GL_TRUE, normal_matrix.astype(np.float32))
                GL.glUniformMatrix4fv(loc["projection"], 1, GL.GL_TRUE, projection)
                GL.glUniform1ui(loc["instance_id"], index + 1)
                GL.glUniform3fv(loc["base_color"], 1, surface.color.astype(np.float32))
                if textured:
                    GL.glActiveTexture(GL.GL_TEXTURE0)
                    surface.texture._bind()
                    GL.glUniform1i(loc["base_color_texture"], 0)
                # Cull like the beauty pass so both see the same surfaces.
                if primitive.material.doubleSided:
                    GL.glDisable(GL.GL_CULL_FACE)
                else:
                    GL.glEnable(GL.GL_CULL_FACE)
                    GL.glCullFace(GL.GL_BACK)
                primitive._bind()
                instances = 1 if primitive.poses is None else len(primitive.poses)
                if primitive.indices is not None:
                    GL.glDrawElementsInstanced(
                        primitive.mode, primitive.indices.size, GL.GL_UNSIGNED_INT, ctypes.c_void_p(0), instances
                    )
                else:
                    GL.glDrawArraysInstanced(primitive.mode, 0, len(primitive.positions), instances)
                primitive._unbind()
                program._unbind()

        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._fbo)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        # The raw entry point writes straight into our arrays: no intermediate bytes object.
        read_pixels_into(0, 0, self.width, self.height, GL.GL_RGBA, GL.GL_FLOAT, self._geometry.ctypes.data_as(ctypes.c_void_p))
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT1)
        read_pixels_into(
            0, 0, self.width, self.height, GL.GL_RGBA_INTEGER, GL.GL_UNSIGNED_SHORT,
            self._labels.ctypes.data_as(ctypes.c_void_p),
        )
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)

        geometry = self._geometry[::-1]
        labels = self._labels[::-1]
        return {
            "depth": np.ascontiguousarray(geometry[..., 3]),
            "instance": np.ascontiguousarray(labels[..., 3]),
            "normal": np.ascontiguousarray(geometry[..., :3]),
            "albedo": labels[..., :3].astype(np.uint8),
        }
