"""``apply_chain``: linear HDR frame + effect specs -> the final sRGB bytes of the beauty frame.

The chain runs the effects in order on float32 linear light. ``tonemap`` maps to
display-linear 0..1; without it, light is clipped to 0..1. The result is encoded with
the exact sRGB curve; display-space effects (film grain) run on the encoded values,
before they are quantised to bytes. Only the beauty frame is made: depth and the other
buffers are read, never written.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from hybrid.render.post.color import _encode_bytes_inplace, _encode_inplace
from hybrid.render.post.registry import EFFECTS, Frame, PostError
from hybrid.render.post.spec import PostChain, PostSpec
from hybrid.render.post.workspace import scratch


def parse_chain(effects: Union[PostChain, Sequence[Union[PostSpec, dict[str, Any]]]]) -> tuple[PostSpec, ...]:
    """Validate a chain given as specs or plain dicts (as a recipe gives it); raises pydantic's ValidationError.

    Errors are located by index and field, e.g. ``[1].bloom.threshold``; an effect out
    of order is blamed at its index (see ``spec.check_order``).
    """
    if isinstance(effects, PostChain):
        return tuple(effects.root)
    data = [e.model_dump() if isinstance(e, PostSpec) else e for e in effects]
    return tuple(PostChain.model_validate(data).root)


def _as_generator(rng: Union[np.random.Generator, int]) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator or an integer seed, got {type(rng).__name__}")


def apply_chain(
    linear_rgb: np.ndarray,
    effects: Union[PostChain, Sequence[Union[PostSpec, dict[str, Any]]]],
    *,
    depth: Optional[np.ndarray] = None,
    K: Optional[np.ndarray] = None,
    rng: Union[np.random.Generator, int],
) -> np.ndarray:
    """Run ``effects`` on one frame and return its sRGB bytes, uint8 (H, W, 3).

    linear_rgb: float (H, W, 3) linear light, HDR allowed (>= 0); or, when the chain
    starts with ``motion_blur``, its sub-frames stacked (S, H, W, 3).
    depth: float32 (H, W) z-depth in metres, 0 on background; needed by depth_of_field.
    K: (3, 3) intrinsics in pixels; needed by depth_of_field.
    rng: the generator that seeded effects draw from (or an int seed); the same seed
    gives the same bytes. Inputs are not modified.
    """
    specs = parse_chain(effects)
    rng = _as_generator(rng)
    rgb = np.asarray(linear_rgb)
    stacked = bool(specs) and specs[0].type == "motion_blur"
    want = 4 if stacked else 3
    if rgb.ndim != want or rgb.shape[-1] != 3:
        shape = "(S, H, W, 3) sub-frames, as the chain starts with motion_blur" if stacked else "(H, W, 3)"
        raise PostError(f"linear_rgb must be {shape}, got shape {rgb.shape}")
    if not np.issubdtype(rgb.dtype, np.floating):
        raise PostError(
            f"linear_rgb must be float linear light (the beauty pass's HDR frame: Rasterizer.render(..., hdr=True)), "
            f"got {rgb.dtype}; decode 8-bit rgb with color.gamma_to_linear"
        )
    size = rgb.shape[-3:-1]
    if depth is not None:
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != size:
            raise PostError(f"depth must be (H, W) = {size}, got {depth.shape}")
    if K is not None:
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise PostError(f"K must be 3x3, got shape {K.shape}")
    given = {"depth": depth, "K": K}
    for i, spec in enumerate(specs):
        missing = [n for n in spec.needs if given[n] is None]
        if missing:
            raise PostError(
                f"effect [{i}] {spec.type} needs {' and '.join(missing)}: pass {', '.join(m + '=' for m in missing)} "
                "to apply_chain"
            )

    # Planar (3, H, W) inside the chain (see Frame), in two arrays of its own that the
    # effects fill in turn (Frame.out), so no effect maps a fresh frame of memory.
    h, w = size
    buffers = (scratch("apply_chain.a", (3, h, w)), scratch("apply_chain.b", (3, h, w)))
    if stacked:
        image = np.ascontiguousarray(np.moveaxis(rgb, -1, -3), dtype=np.float32)
    else:
        image = buffers[0]
        np.copyto(image, np.moveaxis(rgb, -1, 0))
    displayed = False  # False: linear light; True: sRGB-encoded display values
    for spec in specs:
        if spec.space == "display" and not displayed:
            image = _encode_inplace(_owned(image, buffers))
            displayed = True
        spare = buffers[1] if image is buffers[0] else buffers[0]
        image = EFFECTS[spec.type].fn(Frame(rgb=image, depth=depth, K=K, out=spare), spec, rng)
    image = _owned(image, buffers)
    if displayed:
        np.clip(image, 0.0, 1.0, out=image)
        image *= np.float32(255.0)
        image += np.float32(0.5)
        codes = image.astype(np.uint8)
    else:
        codes = _encode_bytes_inplace(image)
    return np.ascontiguousarray(codes.transpose(1, 2, 0))


def _owned(image: np.ndarray, buffers: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``image`` if the chain may write into it (one of its buffers, or a fresh writable array), else a copy.

    An effect may hand back a read-only or shared array; writing into that would reach
    into memory the chain does not own.
    """
    if any(image is b for b in buffers):
        return image
    if image.flags.writeable and image.flags.c_contiguous and image.base is None:
        return image
    return image.copy()
