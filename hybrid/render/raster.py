"""``Rasterizer``: a scene's per-frame buffers (rgb, depth, instance, normal, albedo) from a State.

It owns one GL context of the scene's resolution, the pyrender scene built once from
the spec (``scene_build``), and two passes per frame:

- ``beauty``: PBR lighting with shadows as the lights ask, as linear HDR radiance
  (``hdr``, for the post chain) or display-encoded (``rgb``);
- ``gbuffer``: depth, instance, normal, albedo in one unlit pass.

Several rasterizers may live in one process: each has its own context and makes it
current before drawing. Close them (or use ``with``) to free GL memory promptly.
"""

from __future__ import annotations

import numpy as np

from hybrid.render.beauty import BeautyPass
from hybrid.render.gbuffer import GBufferPass
from hybrid.render.gl import GLContext
from hybrid.render.scene_build import RenderScene, build_render_scene
from hybrid.scene.spec import Scene
from hybrid.state import State
from hybrid.transforms import CV_TO_GL, pose_matrices

BUFFER_NAMES = ("rgb", "depth", "instance", "normal", "albedo")


class Rasterizer:
    """Draws every buffer of DESIGN.md's table except flow for one frame of ``scene``.

    ``render(state, cam_to_world)`` returns, all (H, W, ...) with rows top-down:
    rgb uint8 (H, W, 3), the beauty pass encoded for display; depth float32 (H, W)
    z-depth in metres, 0 on background; instance uint16 (H, W), object i of the
    scene is i + 1, 0 on background; normal float32 (H, W, 3) unit normal in camera
    OpenCV axes, 0 on background; albedo uint8 (H, W, 3) colour x texture without
    lighting (materials.py), the background colour on background. ``render(..., hdr=True)`` returns the beauty
    pass as ``hdr`` instead of ``rgb``: float32 (H, W, 3) linear radiance, unclamped.
    """

    def __init__(self, scene: Scene):
        self.scene = scene
        self.width, self.height = scene.width, scene.height
        self._names = tuple(obj.name for obj in scene.objects)
        if len(self._names) > np.iinfo(np.uint16).max:
            raise ValueError(f"{len(self._names)} objects: the uint16 instance buffer holds at most 65535")
        self._ctx = GLContext(self.width, self.height)
        try:
            self.render_scene: RenderScene = build_render_scene(scene)
            self._beauty = BeautyPass(self.render_scene, self.width, self.height)
            self._gbuffer = GBufferPass(self.width, self.height)
        except BaseException:
            self._ctx.close()
            raise

    # Read-only handles for baselines and debugging: the pyrender scene, the renderer
    # drawing it in this rasterizer's context, and the flags of the rgb pass.
    @property
    def pyrender_scene(self):
        return self.render_scene.scene

    @property
    def renderer(self):
        return self._ctx.renderer

    @property
    def rgb_flags(self) -> int:
        return int(self._beauty.flags)

    def make_current(self) -> None:
        self._ctx.make_current()

    def set_frame(self, state: State, cam_to_world: np.ndarray) -> None:
        """Pose every object from ``state`` and the camera from (4, 4) OpenCV cam_to_world."""
        if tuple(state.names) != self._names:
            raise ValueError(
                f"state objects {list(state.names)} do not match the scene's objects {list(self._names)} (same order)"
            )
        rs = self.render_scene
        poses = pose_matrices(np.asarray(state.position, dtype=np.float64), np.asarray(state.quaternion, dtype=np.float64))
        for node, pose in zip(rs.object_nodes, poses):
            rs.scene.set_pose(node, pose)
        rs.scene.set_pose(rs.camera_node, np.asarray(cam_to_world, dtype=np.float64) @ CV_TO_GL)

    def render(
        self, state: State, cam_to_world: np.ndarray, *, hdr: bool = False, beauty: bool = True
    ) -> dict[str, np.ndarray]:
        """All five buffers of one frame, or with ``hdr`` the beauty frame as linear float; see the class docstring.

        ``beauty=False`` skips the beauty pass (only depth, instance, normal, albedo), for
        callers that draw their own beauty frames (motion-blur sub-frames).
        """
        cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
        self._ctx.make_current()
        self.set_frame(state, cam_to_world)
        if not beauty:
            # The beauty pass is where pyrender uploads meshes and textures to this context;
            # without it the G-buffer pass would find them missing.
            self._ctx.renderer._update_context(self.render_scene.scene, self._beauty.flags)
            frame = {}
        elif hdr:
            frame = {"hdr": self._beauty.draw_hdr(self._ctx.renderer)}
        else:
            frame = {"rgb": self._beauty.draw(self._ctx.renderer)}
        camera = self.render_scene.camera_node.camera
        buffers = self._gbuffer.draw(
            self.render_scene,
            np.linalg.inv(cam_to_world),
            camera.get_projection_matrix(width=self.width, height=self.height),
        )
        return {**frame, **buffers}

    def render_rgb(self, state: State, cam_to_world: np.ndarray) -> np.ndarray:
        """Only the rgb buffer: uint8 (H, W, 3), the beauty pass encoded for display."""
        self._ctx.make_current()
        self.set_frame(state, np.asarray(cam_to_world, dtype=np.float64))
        return self._beauty.draw(self._ctx.renderer)

    def render_hdr(self, state: State, cam_to_world: np.ndarray) -> np.ndarray:
        """Only the beauty pass as float32 (H, W, 3) linear radiance (for sub-frame renders and the post chain)."""
        self._ctx.make_current()
        self.set_frame(state, np.asarray(cam_to_world, dtype=np.float64))
        return self._beauty.draw_hdr(self._ctx.renderer)

    def close(self) -> None:
        if self._ctx.closed:
            return
        self._ctx.make_current()
        self._beauty.delete()
        self._gbuffer.delete()
        self._ctx.close()

    def __enter__(self) -> "Rasterizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
