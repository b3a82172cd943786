"""The effect registry: effect ``type`` -> the function that applies it.

An effect is a pure function ``fn(frame: Frame, params, rng) -> np.ndarray`` that
returns a planar (3, H, W) float32 image and never writes into ``frame.rgb``,
``frame.depth`` or ``frame.K`` (it may return ``frame.rgb`` itself when it changes
nothing). It may build its result in ``frame.out`` when that is given. Adding one is a
parameter model in ``spec.py`` (added to ``EffectSpec``) plus::

    @register(MySpec)
    def my_effect(frame, params, rng): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from hybrid.render.post.spec import PostSpec


class PostError(ValueError):
    """The chain cannot run on what it was given (missing depth, wrong shapes); the message says what to pass."""


@dataclass(frozen=True)
class Frame:
    """What an effect sees of one frame.

    rgb: float32 planar (3, H, W), channels R, G, B first: linear light (HDR) for
    scene-space effects, sRGB-encoded 0..1 for display-space effects; for
    ``motion_blur`` the stacked sub-frames (S, 3, H, W). Planar because per-channel
    work then runs over contiguous memory, several times faster than (H, W, 3) at these
    sizes; ``apply_chain`` converts at its two ends.
    depth: float32 (H, W) z-depth in metres, 0 on background (infinitely far), or None.
    K: (3, 3) intrinsics in pixels, or None. Effects read these, never write them.
    out: None, or a spare float32 (3, H, W) array, not overlapping ``rgb``, that the
    effect may fill and return instead of allocating its result: the chain passes
    one, so a frame's worth of fresh memory is not mapped for every effect. Its
    contents on arrival are undefined.
    """

    rgb: np.ndarray
    depth: Optional[np.ndarray] = None
    K: Optional[np.ndarray] = None
    out: Optional[np.ndarray] = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[-2])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[-1])


EffectFn = Callable[[Frame, PostSpec, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Effect:
    spec: type[PostSpec]
    fn: EffectFn


EFFECTS: dict[str, Effect] = {}


def effect_type(spec: type[PostSpec]) -> str:
    """The ``type`` tag of a parameter model (its literal default)."""
    return str(spec.model_fields["type"].default)


def register(spec: type[PostSpec]) -> Callable[[EffectFn], EffectFn]:
    """Decorator: make ``fn`` the implementation of the effect whose parameters are ``spec``."""

    def add(fn: EffectFn) -> EffectFn:
        name = effect_type(spec)
        if name in EFFECTS and EFFECTS[name].fn is not fn:
            raise ValueError(f"post effect {name!r} is registered twice")
        EFFECTS[name] = Effect(spec=spec, fn=fn)
        return fn

    return add
