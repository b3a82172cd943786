"""The buffer registry: every per-pixel buffer a clip can hold, described once.

For each buffer: its name, dtype, the shape of one frame after (H, W), its unit,
what it means, when a clip holds it (its ``group``), how compact storage keeps it
(a codec from ``hybrid.io.codecs`` with a documented error bound) and how a
preview shows it (a function of ``hybrid.io.visualize``). Everything else reads
this table: the rasteriser's and dataset writer's layouts, metadata.json's
``buffers`` entry, the memory estimate, the contact sheet, the storage writers and
readers, and the README's buffer tables (a test checks them against it).

Adding a buffer is one ``register_buffer(...)`` call here (or in a plug-in module)
plus the code that computes it.

Groups, in the order a clip lists them:

- ``core``: drawn by the rasteriser for every frame of every clip;
- ``flow``: exact optical flow from depth, instance ids and poses (``hybrid.render.flow``);
- ``fields``: present in clips of scenes with ``fields:`` (and in every clip of a
  dataset whose recipe has ``fields:``), zeros where a field is absent;
- ``neural``: added when the neural renderer replaces the beauty frames;
- ``hdr``: the beauty frame's linear radiance before tone mapping and the post chain,
  when asked (``hybrid render --hdr``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional

import numpy as np

from hybrid.io import visualize as vis

GROUPS = ("core", "flow", "fields", "neural", "hdr")
# Flow is kept to 1/64 pixel: an absolute error of at most 1/128 px, far below the
# error of any flow estimator it is used to train or score.
FLOW_STEP_PX = 1.0 / 64.0
# 13 mantissa bits keep a float to within 2^-14 = 6.1e-5 of its value: depth to
# better than 1e-4 relative (0.06 mm at 1 m).
RELATIVE_BITS = 13


class BufferNameError(ValueError):
    """A buffer asked for by name that the clip or registry does not have; the message lists those it has."""


@dataclass(frozen=True)
class Buffer:
    """One buffer of the contract; arrays of it have shape (T, H, W, *channels)."""

    name: str
    dtype: str
    channels: tuple[int, ...]
    unit: str
    meaning: str
    group: str
    codec: Mapping[str, object] = field(default_factory=lambda: {"codec": "lossless"})
    preview: Optional[Callable[[np.ndarray], np.ndarray]] = None
    in_preview: bool = True  # a column of the contact sheet

    @property
    def shape_text(self) -> str:
        """'(T,H,W)' or '(T,H,W,3)': the shape as the docs write it."""
        return "(" + ",".join(["T", "H", "W", *map(str, self.channels)]) + ")"

    @property
    def doc(self) -> str:
        """One line for metadata.json: dtype, shape and meaning."""
        return f"{self.dtype} {self.shape_text} {self.meaning}"

    @property
    def bytes_per_pixel(self) -> int:
        """Bytes per pixel per frame held in memory."""
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.channels, dtype=np.int64)))

    def frame_shape(self, height: int, width: int) -> tuple[int, ...]:
        return (height, width, *self.channels)

    def empty(self, *lead: int) -> np.ndarray:
        """Zeros of this buffer shaped (*lead, *channels): ``empty(T, H, W)`` for a clip."""
        return np.zeros((*lead, *self.channels), dtype=self.dtype)


BUFFERS: dict[str, Buffer] = {}


def register_buffer(buffer: Buffer) -> Buffer:
    """Add a buffer to the contract (its name must be new, its group one of GROUPS)."""
    if buffer.name in BUFFERS:
        raise ValueError(f"buffer {buffer.name!r} is already registered")
    if buffer.group not in GROUPS:
        raise ValueError(f"buffer {buffer.name!r}: group {buffer.group!r} is not one of {GROUPS}")
    np.dtype(buffer.dtype)  # a TypeError here names a dtype numpy does not know
    BUFFERS[buffer.name] = buffer
    return buffer


def get(name: str) -> Buffer:
    """The registry entry of `name`; KeyError lists the known buffers."""
    try:
        return BUFFERS[name]
    except KeyError:
        raise KeyError(f"unknown buffer {name!r}; the buffers are {', '.join(BUFFERS)}") from None


def names(*groups: str) -> tuple[str, ...]:
    """Buffer names of the given groups (all groups when none), in registry order."""
    return tuple(n for n, b in BUFFERS.items() if not groups or b.group in groups)


def clip_buffer_names(with_fields: bool) -> tuple[str, ...]:
    """What a rendered clip holds: core and flow buffers, plus the field buffers when the scene has fields."""
    return names("core", "flow", *(("fields",) if with_fields else ()))


def layout(buffer_names: Iterable[str], *lead: int) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, full shape (*lead, *channels)) for each of `buffer_names`."""
    return {n: (get(n).dtype, (*lead, *get(n).channels)) for n in buffer_names}


def bytes_per_pixel(buffer_names: Iterable[str]) -> int:
    """Bytes per pixel per frame of the given buffers held in memory."""
    return sum(get(n).bytes_per_pixel for n in buffer_names)


def empty_buffers(buffer_names: Iterable[str], *lead: int) -> dict[str, np.ndarray]:
    """Zeros for each buffer, shaped (*lead, *channels)."""
    return {n: get(n).empty(*lead) for n in buffer_names}


def docs(buffer_names: Iterable[str]) -> dict[str, str]:
    """metadata.json's ``buffers`` entry: name -> 'dtype (T,H,W,...) meaning'; unregistered names are skipped."""
    return {n: BUFFERS[n].doc for n in buffer_names if n in BUFFERS}


def codec(name: str) -> dict:
    """How compact storage keeps `name` (a ``hybrid.io.codecs`` description); lossless when unregistered."""
    b = BUFFERS.get(name)
    return dict(b.codec) if b is not None else {"codec": "lossless"}


def preview_columns() -> tuple[str, ...]:
    """The contact sheet's columns, in order (a clip shows those it holds)."""
    return tuple(n for n, b in BUFFERS.items() if b.in_preview)


def check_names(requested: Iterable[str], available: Iterable[str], where: str) -> tuple[str, ...]:
    """`requested` as a tuple, or BufferNameError naming the unknown ones and listing what `available` offers."""
    wanted = tuple(dict.fromkeys(requested))
    have = tuple(available)
    unknown = [n for n in wanted if n not in have]
    if not wanted:
        raise BufferNameError(f"{where}: no buffers named; pick from {', '.join(have)}")
    if unknown:
        raise BufferNameError(f"{where}: {', '.join(map(repr, unknown))} not among this clip's buffers; pick from {', '.join(have)}")
    return wanted


def markdown_table(group: str) -> str:
    """The README's buffer table of one group, generated from the registry."""
    rows = ["| buffer | dtype, shape | unit | meaning | compact storage keeps it |", "|---|---|---|---|---|"]
    from hybrid.io.codecs import error_bound

    for b in BUFFERS.values():
        if b.group == group:
            rows.append(f"| `{b.name}` | {b.dtype} {b.shape_text} | {b.unit} | {b.meaning} | {error_bound(dict(b.codec))} |")
    return "\n".join(rows)


_LOSSLESS = {"codec": "lossless"}
_FLOW = {"codec": "fixed", "step": FLOW_STEP_PX}
_RELATIVE = {"codec": "relative", "bits": RELATIVE_BITS}
# Normals as two 16-bit octahedral coordinates: the direction to within 6.6e-5 rad, unit length.
_NORMAL = {"codec": "unit_vector", "bits": 16}

# What each buffer means, as metadata.json and the README say it.
_MEANINGS = {
    "rgb": "final sRGB frame",
    "depth": "z-depth in metres along the camera axis; 0 where nothing was hit",
    "instance": "instance_id of the visible surface; 0 background",
    "normal": "unit surface normal in camera OpenCV axes; 0 background",
    "albedo": "base colour without lighting, sRGB",
    "flow_fwd": "pixel offset (dx, dy) of this pixel's surface point in the next frame; 0 in the last frame; "
    "NaN where the point moves behind the next camera",
    "flow_bwd": "pixel offset (dx, dy) of this pixel's surface point in the previous frame; 0 in the first frame",
    "gas_density": "smoke concentration integrated along the view ray up to the opaque surface (concentration x metres)",
    "gas_temperature": "highest gas temperature above ambient along the view ray up to the opaque surface (kelvin)",
    "liquid_mask": "1 where a liquid surface lies in front of the opaque surface",
    "liquid_thickness": "metres of liquid along the view ray before the opaque surface",
    "fluid_velocity": "screen motion (dx, dy) in pixels per frame of the fluid seen at the pixel (liquid surface, else "
    "density-weighted gas); 0 where no fluid",
    "heat_haze": "shift (dx, dy) in pixels by which hot air bends the view at the pixel: the beauty frame shows what "
    "lies at the pixel plus the shift; 0 where the view crosses air at ambient temperature only; the geometric buffers "
    "are not bent",
    "rgb_raster": "the rasteriser's beauty frame, kept where another renderer (Cycles, the neural renderer) drew rgb",
    "radiance": "linear radiance of the beauty frame (the renderer that drew rgb) before the post chain and display "
    "encoding; unclamped, in the scene's light units",
}

# Per group: (name, dtype, channels, unit, codec, preview, a contact-sheet column).
_TABLE = {
    "core": [
        ("rgb", "uint8", (3,), "sRGB code", _LOSSLESS, vis.show_rgb, True),
        ("depth", "float32", (), "m", _RELATIVE, vis.show_depth, True),
        ("instance", "uint16", (), "id", _LOSSLESS, vis.show_instance, True),
        ("normal", "float32", (3,), "unit vector", _NORMAL, vis.show_normal, True),
        ("albedo", "uint8", (3,), "sRGB code", _LOSSLESS, vis.show_rgb, True),
    ],
    "flow": [("flow_fwd", "float32", (2,), "px", _FLOW, vis.show_flow, True), ("flow_bwd", "float32", (2,), "px", _FLOW, vis.show_flow, False)],
    "fields": [
        ("gas_density", "float32", (), "concentration x m", _RELATIVE, vis.show_amount, True),
        ("gas_temperature", "float32", (), "K", _RELATIVE, vis.show_temperature, True),
        ("liquid_mask", "uint8", (), "0 or 1", _LOSSLESS, vis.show_mask, False),
        ("liquid_thickness", "float32", (), "m", _RELATIVE, vis.show_amount, True),
        ("fluid_velocity", "float32", (2,), "px/frame", _FLOW, vis.show_flow, True),
        ("heat_haze", "float32", (2,), "px", _FLOW, vis.show_flow, False),
    ],
    "neural": [("rgb_raster", "uint8", (3,), "sRGB code", _LOSSLESS, vis.show_rgb, False)],
    "hdr": [("radiance", "float32", (3,), "linear, 1 = white", _RELATIVE, vis.show_radiance, False)],
}
for _group, _rows in _TABLE.items():
    for _name, _dtype, _channels, _unit, _codec, _preview, _column in _rows:
        register_buffer(Buffer(_name, _dtype, _channels, _unit, _MEANINGS[_name], _group, _codec, _preview, _column))


if __name__ == "__main__":  # python -m hybrid.buffers: the README's buffer tables
    for _group in ("core", "flow", "fields", "hdr"):
        print(f"{_group}:\n\n{markdown_table(_group)}\n")
