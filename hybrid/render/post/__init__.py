"""Game-engine post-processing of the beauty frame, in linear HDR light.

A chain is a list of effect specs (plain dicts in a recipe, validated by
``parse_chain`` / ``PostChain``), applied by ``apply_chain`` to one frame's linear
light (float32 (H, W, 3)) with its depth (metres) and K, returning the final sRGB bytes.
Effects are pure functions of (frame, params, rng), registered by ``type``:

| type | space | module |
|---|---|---|
| motion_blur | scene (first) | motion_blur.py (sub-frames from the caller) |
| exposure | scene | exposure.py |
| depth_of_field | scene, needs depth and K | dof.py |
| bloom | scene | bloom.py |
| chromatic_aberration | scene | aberration.py |
| color_grade | scene | grade.py |
| vignette | scene | vignette.py |
| tonemap | scene -> display | tonemap.py |
| film_grain | display | grain.py |

Parameters live in ``spec.py``, the registry and the ``Frame`` effects receive in
``registry.py``, ``apply_chain`` in ``chain.py``, colour curves in ``color.py``, the
separable filters the effects share in ``filters.py``, reusable per-thread scratch
arrays in ``workspace.py``. Inside the chain frames are planar (3, H, W) (see
``Frame``). Only the beauty frame changes; every other buffer stays exact.
"""

from __future__ import annotations

# Importing the effect modules registers them.
from hybrid.render.post import aberration, bloom, dof, exposure, grade, grain, motion_blur, tonemap, vignette  # noqa: F401
from hybrid.render.post.chain import apply_chain, parse_chain
from hybrid.render.post.color import (
    decode_srgb8,
    encode_srgb8,
    gamma_to_linear,
    linear_to_srgb,
    luminance,
    srgb_to_linear,
)
from hybrid.render.post.motion_blur import accumulate_subframes, shutter_weights, subframe_schedule
from hybrid.render.post.registry import EFFECTS, Effect, Frame, PostError, register
from hybrid.render.post.spec import GAME_LOOK, EffectSpec, PostChain, PostSpec

__all__ = [
    "apply_chain",
    "parse_chain",
    "PostChain",
    "EffectSpec",
    "PostSpec",
    "GAME_LOOK",
    "EFFECTS",
    "Effect",
    "Frame",
    "PostError",
    "register",
    "accumulate_subframes",
    "shutter_weights",
    "subframe_schedule",
    "srgb_to_linear",
    "linear_to_srgb",
    "encode_srgb8",
    "decode_srgb8",
    "gamma_to_linear",
    "luminance",
]
