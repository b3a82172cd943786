"""Render one frame's State with Cycles and read back its passes.

``CyclesRenderer(scene, options)`` builds the Blender scene once (``build``); each
``render_passes(state, cam_to_world)`` poses the objects and the camera, path-traces
the frame and returns float arrays:

- ``hdr``: (H, W, 3) linear radiance (Cycles' Combined pass, denoised when asked; the
  liquid drawn as a refracting surface, smoke and fire as a volume, ``cycles.fields``),
  in the units of the rasteriser's HDR beauty (see ``build`` for the light units);
- ``depth``: (H, W) metres along the camera's optical axis, 0 where nothing is hit (as the depth buffer);
- ``instance``: (H, W) int32 object index (object i -> i + 1, 0 for the background);
- ``albedo``: (H, W, 3) Cycles' linear diffuse colour.

The exact buffers of a clip still come from the rasteriser; depth, instance and
albedo here exist to measure that the two agree pixel for pixel.

bpy is one Blender per process with global state, so one CyclesRenderer may be open
at a time in a process (opening a second is an error; Ray workers are processes).
Passes travel through a multilayer OpenEXR file in a private temporary folder,
deleted on close: bpy gives no other way to read a render's passes in background mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from typing import Optional

import numpy as np

from hybrid.interrupts import raise_deferred
from hybrid.render.cycles.build import (
    BlenderScene,
    MappingError,
    add_fragment_objects,
    build_blender_scene,
    pose_frame,
    show_burn,
    set_camera,
)
from hybrid.render.cycles.options import CyclesOptions
from hybrid.render.errors import RenderSetupError
from hybrid.scene.spec import Scene

BACKGROUND_DEPTH = 1e9  # Cycles writes 1e10 for rays that hit nothing
GPU_DEVICES = {"cuda": "CUDA", "optix": "OPTIX"}

_open_lock = threading.Lock()
_open_renderer: Optional["CyclesRenderer"] = None


class CyclesUnavailable(RenderSetupError):
    """bpy (Blender as a Python module) cannot be imported; the message says how to get it."""


def import_bpy():
    """The bpy module, or CyclesUnavailable saying how to install it."""
    try:
        import bpy  # noqa: F401
    except ImportError as err:
        import sys

        where = (
            "pip install 'hybrid[cycles]' (bpy 5.0.1, which needs NumPy < 2)"
            if sys.version_info[:2] == (3, 11)
            else f"bpy 5.0.1 is built for Python 3.11 only and this is Python {sys.version_info[0]}.{sys.version_info[1]}"
        )
        raise CyclesUnavailable(
            f"the cycles renderer needs Blender as a Python module (bpy), which did not import ({err}); "
            f"{where}, or render with --renderer raster"
        ) from err
    return bpy


@contextlib.contextmanager
def _quiet():
    """Blender prints every render's progress, and notes such as a missing CUDA library, on the
    process's stdout and stderr: send them nowhere meanwhile (errors still raise)."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _use_gpu(bpy, device: str) -> None:
    prefs = bpy.context.preferences.addons["cycles"].preferences
    kind = GPU_DEVICES[device]
    try:
        prefs.compute_device_type = kind
    except TypeError as err:
        raise RenderSetupError(f"this bpy build has no {kind} support; use --device cpu") from err
    prefs.get_devices()
    found = [d for d in prefs.devices if d.type == kind]
    if not found:
        raise RenderSetupError(f"Cycles found no {kind} device on this machine; use --device cpu")
    for d in prefs.devices:
        d.use = d.type == kind


class CyclesRenderer:
    """A Cycles renderer for one scene; a beauty back end (``render_hdr``, ``close``)."""

    def __init__(self, scene: Scene, options: Optional[CyclesOptions] = None) -> None:
        global _open_renderer
        self.scene = scene
        self.options = options if options is not None else CyclesOptions()
        self._bpy = import_bpy()
        with _open_lock:
            if _open_renderer is not None:
                raise RenderSetupError(
                    "a Cycles renderer is already open in this process (bpy has one global scene); "
                    "close it first, or render in another process"
                )
            _open_renderer = self
        self._tmp: Optional[str] = None
        try:
            self._tmp = tempfile.mkdtemp(prefix="hybrid-cycles-")
            with _quiet():
                self._bpy.ops.wm.read_factory_settings(use_empty=True)
                self.built: BlenderScene = build_blender_scene(self._bpy, scene, self._bpy.context.scene)
                self._liquid = self._gas = None
                f = scene.fields
                if f is not None and f.liquid is not None:
                    from hybrid.render.cycles.fields import LiquidObject

                    self._liquid = LiquidObject(self._bpy, self.built.scene, f.liquid.look, f.arch, f.deterministic)
                if f is not None and f.gas is not None:
                    from hybrid.render.cycles.fields import GasObject

                    self._gas = GasObject(self._bpy, self.built.scene, f.gas.look, self._tmp)
                self._configure()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ set-up

    def _configure(self) -> None:
        bpy, opts, sc = self._bpy, self.options, self.built.scene
        sc.render.engine = "CYCLES"
        if opts.device == "cpu":
            sc.cycles.device = "CPU"
        else:
            _use_gpu(bpy, opts.device)
            sc.cycles.device = "GPU"
        sc.cycles.samples = opts.samples
        sc.cycles.use_adaptive_sampling = False
        sc.cycles.use_denoising = opts.denoise
        if opts.denoise:
            sc.cycles.denoiser = "OPENIMAGEDENOISE"
            sc.cycles.denoising_input_passes = "RGB_ALBEDO_NORMAL"
            sc.cycles.denoising_quality = opts.denoise_quality.upper()
            sc.cycles.denoising_prefilter = "ACCURATE" if opts.denoise_quality == "high" else "FAST"
        # The light tree pays off with many lights; a scene has at most a few lamps
        # (and emissive surfaces, which it does help to sample).
        sc.cycles.use_light_tree = any(o.look.emission_strength > 0 for o in self.scene.objects)
        sc.cycles.seed = opts.seed
        sc.cycles.use_animated_seed = False
        sc.cycles.max_bounces = opts.max_bounces
        sc.cycles.volume_bounces = opts.volume_bounces
        # Volumes by ray marching (Cycles' "biased" mode) at one step per voxel, with a
        # random offset per path, rather than unbiased null scattering: on the solver's
        # trilinear grids it integrates optical depth to well under 1 % (the Beer-Lambert
        # tests), and through a uniform slab at 16 samples its per-pixel standard
        # deviation measured 0.003 against 0.06 for null scattering: a twentieth.
        sc.cycles.volume_biased = True
        sc.cycles.volume_step_rate = 1.0
        sc.cycles.filter_width = opts.filter_width
        sc.cycles.pixel_filter_type = "BLACKMAN_HARRIS"
        sc.render.threads_mode = "FIXED" if opts.threads else "AUTO"
        if opts.threads:
            sc.render.threads = opts.threads
        # Keep the synced scene (shaders, meshes, BVH) between frames: per frame only
        # transforms change, so each render refits instead of rebuilding.
        sc.render.use_persistent_data = True
        sc.render.use_motion_blur = False  # the post chain's motion_blur renders its own sub-frames
        sc.render.film_transparent = False
        sc.view_settings.view_transform = "Standard"
        sc.view_settings.exposure = 0.0
        sc.view_settings.gamma = 1.0
        layer = sc.view_layers[0]
        layer.use_pass_combined = True
        layer.use_pass_z = True
        layer.use_pass_object_index = True
        layer.use_pass_diffuse_color = True
        image = sc.render.image_settings
        image.media_type = "MULTI_LAYER_IMAGE"
        image.file_format = "OPEN_EXR_MULTILAYER"
        image.color_depth = "32"
        image.exr_codec = "NONE"

    # ------------------------------------------------------------------ frames

    def render_passes(self, state, cam_to_world: np.ndarray, K: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        """Path-trace one frame: objects at `state`'s poses, camera at `cam_to_world` (OpenCV), pinhole `K`."""
        if self._tmp is None:
            raise RuntimeError("this CyclesRenderer is closed")
        if K is not None:
            set_camera(self.built, K, self.scene.width, self.scene.height)
        if getattr(state, "breaks", ()):
            add_fragment_objects(self._bpy, self.built, self.scene, state.breaks)
        pose_frame(self.built, state.position, state.quaternion, cam_to_world, getattr(state, "present", None))
        if self.built.burn and state.fields is not None:
            show_burn(self.built, state.fields.burn)
        if self._liquid is not None:
            self._liquid.update(state.fields.liquid if state.fields is not None else None)
        if self._gas is not None:
            self._gas.update(state.fields.gas if state.fields is not None else None)
        path = os.path.join(self._tmp, "frame.exr")
        self.built.scene.render.filepath = path
        with _quiet():
            self._bpy.ops.render.render(write_still=True, scene=self.built.scene.name)
        raise_deferred()  # Ctrl-C or SIGTERM that arrived while Blender had the thread
        try:
            return _read_passes(path, self.scene.height, self.scene.width)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def render_hdr(self, state, cam_to_world: np.ndarray) -> np.ndarray:
        return self.render_passes(state, cam_to_world)["hdr"]

    def close(self) -> None:
        global _open_renderer
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        with _open_lock:
            if _open_renderer is self:
                _open_renderer = None
                with _quiet():  # free Blender's copy of the scene
                    self._bpy.ops.wm.read_factory_settings(use_empty=True)

    def __enter__(self) -> "CyclesRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_passes(path: str, height: int, width: int) -> dict[str, np.ndarray]:
    import OpenEXR

    with OpenEXR.File(path) as f:
        named = {name: ch.pixels for part in f.parts for name, ch in part.channels.items()}
    channels = {name.split(".", 1)[1] if "." in name else name: pixels for name, pixels in named.items()}
    try:
        combined = channels["Combined"]
        depth = channels["Depth.Z"] if "Depth.Z" in channels else channels["Depth"]
        index = channels["Object Index.X"] if "Object Index.X" in channels else channels["Object Index"]
        albedo = channels["Diffuse Color"]
    except KeyError as err:  # pragma: no cover - a bpy whose pass names changed
        raise MappingError(f"Cycles wrote no {err} pass (it wrote {sorted(channels)})") from None
    depth = np.asarray(depth, dtype=np.float32).reshape(height, width).copy()
    depth[depth >= BACKGROUND_DEPTH] = 0.0
    return {
        "hdr": np.ascontiguousarray(np.asarray(combined, dtype=np.float32)[..., :3]),
        "depth": depth,
        "instance": np.rint(np.asarray(index, dtype=np.float32)).astype(np.int32).reshape(height, width),
        "albedo": np.ascontiguousarray(np.asarray(albedo, dtype=np.float32)[..., :3]),
    }
