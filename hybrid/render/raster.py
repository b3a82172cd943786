"""``Rasterizer``: a scene's per-frame buffers (rgb, depth, instance, normal, albedo) from a State.

It owns one GL context of the scene's resolution, the pyrender scene built once from
the spec (``scene_build``), and two passes per frame:

- ``beauty``: PBR lighting with shadows as the lights ask, as linear HDR radiance
  (``hdr``, for the post chain) or display-encoded (``rgb``);
- ``gbuffer``: depth, instance, normal, albedo in one unlit pass.

Scenes with ``fields:`` add a third step (``hybrid.render.fields.composite.FieldRenderer``,
Taichi, imported only then): the frame's smoke, fire and liquid
(``State.fields``) are composited over the HDR beauty frame before it is encoded,
and six field buffers join the others (``FIELD_BUFFER_NAMES``). The G-buffer stays
the rigid bodies': smoke and liquid are translucent layers, so a body in smoke or
partly under water keeps its instance id, depth, normal and albedo. Scenes without
fields take exactly the old path (same bits, no Taichi).

Several rasterizers may live in one process: each has its own context and makes it
current before drawing. Close them (or use ``with``) to free GL memory promptly.
"""

from __future__ import annotations

import numpy as np

from hybrid import buffers as buffer_registry
from hybrid.render.beauty import BeautyPass, encode_display
from hybrid.render.gbuffer import GBufferPass
from hybrid.render.gl import GLContext
from hybrid.render.scene_build import (
    RenderScene,
    add_fragment_nodes,
    build_render_scene,
    show_burn,
    show_fire_lights,
    show_present,
)
from hybrid.scene.spec import Scene
from hybrid.state import State
from hybrid.transforms import CV_TO_GL, pose_matrices

BUFFER_NAMES = buffer_registry.names("core")  # what every frame gets (hybrid.buffers)
FIELD_BUFFER_NAMES = buffer_registry.names("fields")  # what frames of scenes with fields add
def _has_fields(state: State) -> bool:
    f = getattr(state, "fields", None)
    return f is not None and (f.gas is not None or f.liquid is not None)


class Rasterizer:
    """Draws every buffer of DESIGN.md's table except flow for one frame of ``scene``.

    ``render(state, cam_to_world)`` returns, all (H, W, ...) with rows top-down:
    rgb uint8 (H, W, 3), the beauty pass encoded for display; depth float32 (H, W)
    z-depth in metres, 0 on background; instance uint16 (H, W), object i of the
    scene is i + 1, 0 on background; normal float32 (H, W, 3) unit normal in camera
    OpenCV axes, 0 on background; albedo uint8 (H, W, 3) colour x texture without
    lighting (materials.py), the background colour on background. ``render(..., hdr=True)`` returns the beauty
    pass as ``hdr`` instead of ``rgb``: float32 (H, W, 3) linear radiance, unclamped.

    Scenes with ``fields:`` (or states carrying ``fields``) also get, all rows top-down:
    gas_density float32 (H, W): smoke density integrated along the view ray up to the
    opaque surface (concentration x metres); gas_temperature float32 (H, W): the highest
    gas temperature above ambient along that ray (kelvin); liquid_mask uint8 (H, W): 1
    where a liquid surface lies in front of the opaque surface; liquid_thickness
    float32 (H, W): metres of liquid along the view ray before the opaque surface;
    fluid_velocity float32 (H, W, 2): screen motion (dx, dy) in pixels per frame
    (``scene.frame_dt_sim`` simulated seconds) of the fluid seen at the pixel, the
    liquid surface point's where liquid_mask, else the density-weighted mean of the
    gas along the ray, 0 where no fluid; heat_haze float32 (H, W, 2): the shift in
    pixels by which hot gas bends the view (``hybrid.render.fields.haze``). The rgb/hdr
    frame then shows the fields composited over the beauty pass, bent by that shift
    (``hybrid.render.fields``).
    """

    def __init__(self, scene: Scene):
        self.scene = scene
        self.width, self.height = scene.width, scene.height
        from hybrid.roster import Roster

        self._names = Roster.from_scene(scene).names  # scene objects, then fragment slots
        self._ctx = GLContext(self.width, self.height)
        try:
            self.render_scene: RenderScene = build_render_scene(scene)
            self._beauty = BeautyPass(self.render_scene, self.width, self.height)
            self._gbuffer = GBufferPass(self.width, self.height)
        except BaseException:
            self._ctx.close()
            raise
        self._field_renderer = None  # built on the first frame with fields (imports Taichi)

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
        if state.breaks:
            add_fragment_nodes(rs, self.scene, state.breaks)
        show_present(rs, state.present)
        if state.fields is not None and state.fields.burn is not None:
            show_burn(rs, state.fields.burn)
        if rs.fire_nodes:
            show_fire_lights(rs, self.scene, state.fields.gas if state.fields is not None else None)
        poses = pose_matrices(np.asarray(state.position, dtype=np.float64), np.asarray(state.quaternion, dtype=np.float64))
        for node, pose in zip(rs.object_nodes, poses):
            if node is not None:
                rs.scene.set_pose(node, pose)
        rs.scene.set_pose(rs.camera_node, np.asarray(cam_to_world, dtype=np.float64) @ CV_TO_GL)

    def render(
        self, state: State, cam_to_world: np.ndarray, *, hdr: bool = False, beauty: bool = True
    ) -> dict[str, np.ndarray]:
        """All buffers of one frame, or with ``hdr`` the beauty frame as linear float; see the class docstring.

        ``beauty=False`` skips the beauty pass (only depth, instance, normal, albedo and,
        with fields, the field buffers), for callers that draw their own beauty frames
        (motion-blur sub-frames).
        """
        cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
        self._ctx.make_current()
        self.set_frame(state, cam_to_world)
        with_fields = _has_fields(state)
        radiance = None
        if not beauty:
            # The beauty pass is where pyrender uploads meshes and textures to this context;
            # without it the G-buffer pass would find them missing.
            self._ctx.renderer._update_context(self.render_scene.scene, self._beauty.flags)
            frame = {}
        elif hdr or with_fields:
            radiance = self._beauty.draw_hdr(self._ctx.renderer)
            frame = {"hdr": radiance}
        else:
            frame = {"rgb": self._beauty.draw(self._ctx.renderer)}
        buffers = self._draw_gbuffer(cam_to_world)
        if with_fields:
            radiance, field_buffers = self._fields().composite(state.fields, cam_to_world, buffers["depth"], radiance)
            if radiance is not None:
                frame = {"hdr": radiance} if hdr else {"rgb": encode_display(radiance)}
            return {**frame, **buffers, **field_buffers}
        if self.scene.fields is not None or getattr(state, "fields", None) is not None:
            return {**frame, **buffers, **buffer_registry.empty_buffers(FIELD_BUFFER_NAMES, self.height, self.width)}
        return {**frame, **buffers}

    def render_rgb(self, state: State, cam_to_world: np.ndarray) -> np.ndarray:
        """Only the rgb buffer: uint8 (H, W, 3), the beauty pass (with the state's fields) encoded for display."""
        if _has_fields(state):
            return encode_display(self.render_hdr(state, cam_to_world))
        self._ctx.make_current()
        self.set_frame(state, np.asarray(cam_to_world, dtype=np.float64))
        return self._beauty.draw(self._ctx.renderer)

    def render_hdr(self, state: State, cam_to_world: np.ndarray) -> np.ndarray:
        """Only the beauty pass as float32 (H, W, 3) linear radiance (for sub-frame renders and the post chain).

        With fields in the state they are composited over it (this also draws the
        G-buffer, for the opaque depth the gas and liquid stop at).
        """
        cam_to_world = np.asarray(cam_to_world, dtype=np.float64)
        self._ctx.make_current()
        self.set_frame(state, cam_to_world)
        radiance = self._beauty.draw_hdr(self._ctx.renderer)
        if not _has_fields(state):
            return radiance
        depth = self._draw_gbuffer(cam_to_world)["depth"]
        return self._fields().composite(state.fields, cam_to_world, depth, radiance)[0]

    def _draw_gbuffer(self, cam_to_world: np.ndarray) -> dict[str, np.ndarray]:
        camera = self.render_scene.camera_node.camera
        return self._gbuffer.draw(
            self.render_scene,
            np.linalg.inv(cam_to_world),
            camera.get_projection_matrix(width=self.width, height=self.height),
        )

    def _fields(self):
        """The field compositor, built on first use: starts Taichi (the scene's backend, or the one running)."""
        if self._field_renderer is None:
            from hybrid.camera import intrinsics
            from hybrid.fields import backend

            if backend.current() is None:
                spec = self.scene.fields
                if spec is not None:
                    backend.ensure(spec.arch, spec.deterministic)
                else:
                    backend.ensure("cpu", True)
            from hybrid.render.fields.composite import FieldRenderer

            cam = self.scene.camera
            self._field_renderer = FieldRenderer(self.scene, intrinsics(cam.fov_deg, self.width, self.height))
        return self._field_renderer

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
