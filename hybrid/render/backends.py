"""Beauty back ends: what draws a frame's lit image, as linear HDR radiance.

The pipeline (``hybrid.pipeline``) takes every buffer but the beauty frame from the
rasteriser (depth, instance, normal, albedo and the field buffers are exact
geometry, whatever draws the light), and the beauty frame from the back end the
user picks: the rasteriser's own PBR pass (``raster``, the default) or any other
registered here. A back end is a factory ``scene -> object`` whose object has

- ``render_hdr(state, cam_to_world) -> float32 (H, W, 3)``: linear radiance,
  unclamped, rows top-down, camera (4, 4) OpenCV cam_to_world; with the state's
  fields in it when the back end draws fields;
- ``close()``, and use as a context manager.

Registering one::

    @register_beauty("mytracer")
    def _mytracer(scene):
        return MyTracer(scene)

after which ``render_clip(scene, beauty="mytracer")`` uses it for the frames and for
motion-blur sub-frames alike, and the post chain and display encoding follow as for
the rasteriser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

if TYPE_CHECKING:  # importing this module stays cheap: the CLI lists the back ends
    from hybrid.scene.spec import Scene
    from hybrid.state import State


class BeautyBackend(Protocol):
    def render_hdr(self, state: "State", cam_to_world: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> "BeautyBackend": ...

    def __exit__(self, *exc) -> None: ...


BEAUTY_BACKENDS: dict[str, Callable[["Scene"], BeautyBackend]] = {}
DEFAULT_BEAUTY = "raster"


def register_beauty(name: str) -> Callable[[Callable[["Scene"], BeautyBackend]], Callable[["Scene"], BeautyBackend]]:
    """Decorator: register a beauty back end factory under `name`."""

    def add(factory: Callable[["Scene"], BeautyBackend]) -> Callable[["Scene"], BeautyBackend]:
        if name in BEAUTY_BACKENDS:
            raise ValueError(f"beauty back end {name!r} is already registered")
        BEAUTY_BACKENDS[name] = factory
        return factory

    return add


def open_beauty(name: str, scene: "Scene") -> BeautyBackend:
    """A new back end `name` for `scene`; ValueError lists the registered ones."""
    if name not in BEAUTY_BACKENDS:
        raise ValueError(f"unknown beauty back end {name!r}; use one of {', '.join(sorted(BEAUTY_BACKENDS))}")
    return BEAUTY_BACKENDS[name](scene)


@register_beauty("raster")
def _raster(scene: "Scene") -> BeautyBackend:
    from hybrid.render.raster import Rasterizer

    return Rasterizer(scene)
