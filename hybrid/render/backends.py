"""Beauty back ends: what draws a frame's lit image, as linear HDR radiance.

The pipeline (``hybrid.pipeline``) takes every buffer but the beauty frame from the
rasteriser (depth, instance, normal, albedo and the field buffers are exact
geometry, whatever draws the light), and the beauty frame from the back end the
user picks: the rasteriser's own PBR pass (``raster``, the default), Cycles
(``cycles``, a path tracer) or any other registered here. A back end is a factory ``scene -> object`` whose object has

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
the rasteriser. A back end with settings registers a Spec model of them,
``@register_beauty("mytracer", options=MyOptions)``, on a factory ``(scene, options)``;
callers pass ``BeautyChoice("mytracer", {"samples": 16})`` where a name would do
(``cycles`` is registered so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol, Union

import numpy as np

from hybrid.render.cycles.options import CyclesOptions  # pydantic only: bpy loads when a renderer opens

if TYPE_CHECKING:  # importing this module stays cheap: the CLI lists the back ends
    from hybrid.scene.spec import Scene
    from hybrid.state import State


class BeautyBackend(Protocol):
    def render_hdr(self, state: "State", cam_to_world: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> "BeautyBackend": ...

    def __exit__(self, *exc) -> None: ...


class BeautyOptionsError(ValueError):
    """A back end was given settings it does not take; the message names them."""


@dataclass(frozen=True)
class BeautyChoice:
    """A back end by name, with its settings (validated by the back end's options model)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., BeautyBackend]
    options: Optional[type]  # a Spec model of the back end's settings; None: it takes none


BEAUTY_BACKENDS: dict[str, _Entry] = {}
DEFAULT_BEAUTY = "raster"
Beauty = Union[str, BeautyChoice]


def register_beauty(name: str, options: Optional[type] = None) -> Callable:
    """Decorator: register a beauty back end factory under `name`.

    Without `options` the factory is ``scene -> backend``; with an options model
    (a ``hybrid.spec`` Spec) it is ``(scene, options) -> backend`` and gets the
    validated settings.
    """

    def add(factory: Callable[..., BeautyBackend]) -> Callable[..., BeautyBackend]:
        if name in BEAUTY_BACKENDS:
            raise ValueError(f"beauty back end {name!r} is already registered")
        BEAUTY_BACKENDS[name] = _Entry(factory, options)
        return factory

    return add


def beauty_name(beauty: Beauty) -> str:
    return beauty.name if isinstance(beauty, BeautyChoice) else beauty


def beauty_options(beauty: Beauty):
    """The validated options model of `beauty` (None for a back end without settings).

    BeautyOptionsError for settings the back end does not take or values out of range.
    """
    from pydantic import ValidationError

    name = beauty_name(beauty)
    if name not in BEAUTY_BACKENDS:
        raise ValueError(f"unknown beauty back end {name!r}; use one of {', '.join(sorted(BEAUTY_BACKENDS))}")
    entry = BEAUTY_BACKENDS[name]
    given = dict(beauty.options) if isinstance(beauty, BeautyChoice) else {}
    if entry.options is None:
        if given:
            raise BeautyOptionsError(f"the {name} back end takes no settings (got {', '.join(sorted(given))})")
        return None
    try:
        return entry.options(**given)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise BeautyOptionsError(f"{name} back end settings: {problems}") from None


def open_beauty(beauty: Beauty, scene: "Scene") -> BeautyBackend:
    """A new back end for `scene`: a name, or a BeautyChoice with settings; ValueError lists the registered ones."""
    options = beauty_options(beauty)
    entry = BEAUTY_BACKENDS[beauty_name(beauty)]
    return entry.factory(scene) if entry.options is None else entry.factory(scene, options)


@register_beauty("raster")
def _raster(scene: "Scene") -> BeautyBackend:
    from hybrid.render.raster import Rasterizer

    return Rasterizer(scene)


@register_beauty("cycles", options=CyclesOptions)
def _cycles(scene: "Scene", options) -> BeautyBackend:
    from hybrid.render.cycles.renderer import CyclesRenderer

    return CyclesRenderer(scene, options)
