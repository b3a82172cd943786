"""Per-frame image files of a clip's buffers, for any image tool: PNG and OpenEXR.

``export_frames(folder, arrays, fmt)`` writes ``folder/<buffer>/00000.<ext>`` for
every frame of every (T, H, W) or (T, H, W, C) buffer and returns the description
(JSON-able) that ``read_frames`` needs, and a user too, to turn the files back into
the arrays; a clip folder keeps it in metadata.json's ``"storage"`` entry.

Files, by the buffer's dtype:

- uint8 (rgb, albedo, liquid_mask): 8-bit PNG, exact ("png8");
- uint16 (instance): 16-bit PNG, exact ("png16");
- float with ``fmt="exr"``: 32-bit float OpenEXR, ZIP compression, exact for
  float32 and float16 (NaN and inf included; float64 is rounded to float32)
  ("exr"). Channels: ``Y`` for one, ``R, G`` for two (flow dx, dy), ``R, G, B``
  for three (normal x, y, z), ``R, G, B, A`` for four;
- float with ``fmt="png"``: 16-bit PNG quantised over the buffer's range in the
  clip, as Kubric stores depth and flow ("png16_range"): code 0 marks NaN (the
  flow of a point that leaves the view); codes 1..65535 stand for
  ``value = offset + (code - 1) * scale`` with ``offset`` the smallest finite value
  of the buffer and ``scale = (largest - smallest) / 65534`` (0 for a constant
  buffer). The error is at most ``scale / 2`` (plus float32 rounding of the
  result, half a unit in the last place). ``+-inf`` cannot be kept and is refused
  (ValueError): use ``fmt="exr"``.

PNG channel layout: one channel is greyscale, three RGB, four RGBA; two channels
(flow dx, dy) are written as RGB with blue 0 (code 0 for png16_range too), which
every viewer opens; the blue channel is ignored on reading. Rows are written with
PNG's "Up" filter (16-bit) or "Sub" filter (8-bit) and deflated at ``level``.

The description, per buffer name::

    {"file": "png8" | "png16" | "png16_range" | "exr",
     "pattern": "<buffer>/{frame:05d}.png",   # str.format with frame=0..frames-1
     "frames": T, "dtype": "float32", "shape": [T, H, W, C...],
     "channels": C (1 for (T, H, W)), "file_dtype": "uint8" | "uint16" | "float32",
     "file_channels": ["R", "G", "B"] (or ["Y"], ...), "bound": "<words>",
     # png16_range only:
     "offset": float, "scale": float, "nan_code": 0,
     "formula": "value = offset + (code - 1) * scale; code 0 = NaN"}

Files appear whole or not at all: each is written under a temporary name in its
folder and renamed into place, and if anything fails midway every file this call
wrote is removed again (a caller that wants the whole folder to appear at once,
like the clip writer, also writes it into a staging folder).
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from hybrid.io.atomic import file_beside

FORMATS = ("png", "exr")
PNG_LEVEL = 6
NAN_CODE = 0
_LEVELS = 65534  # steps between code 1 and code 65535
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)
_PNG_CHANNELS = {v: k for k, v in _PNG_COLOUR.items()}
_EXR_CHANNELS = {1: ("Y",), 2: ("R", "G"), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}
_PNG_NAMES = {1: ["Y"], 2: ["R", "G"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}


class ExportError(ValueError):
    """An exported file cannot be read back (missing, damaged, or not what the description says)."""


# ----------------------------------------------------------------------------- PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(image: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """A PNG file of a uint8 or uint16 (H, W) or (H, W, C<=4) image (C=2 is grey+alpha)."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3):
        raise ValueError(f"PNG holds uint8 or uint16 (H, W[, C]) images, not {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in _PNG_COLOUR or h < 1 or w < 1:
        raise ValueError(f"PNG holds images of 1 to 4 channels and at least 1x1 pixels, not {image.shape}")
    depth = 8 * image.dtype.itemsize
    bpp = channels * image.dtype.itemsize
    raw = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder(">")).view(np.uint8).reshape(h, w * bpp)
    rows = np.empty((h, w * bpp + 1), np.uint8)
    if depth == 16:
        rows[:, 0] = 2  # Up: minus the byte above
        rows[0, 1:] = raw[0]
        np.subtract(raw[1:], raw[:-1], out=rows[1:, 1:])
    else:
        rows[:, 0] = 1  # Sub: minus the byte one pixel to the left
        rows[:, 1 : 1 + bpp] = raw[:, :bpp]
        np.subtract(raw[:, bpp:], raw[:, :-bpp], out=rows[:, 1 + bpp :])
    header = struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR[channels], 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


def read_png(path: str | os.PathLike) -> np.ndarray:
    """A PNG file as uint8/uint16 (H, W) or (H, W, C); ExportError naming the file if it is damaged.

    Reads 8- and 16-bit grey, grey+alpha, RGB and RGBA files that are not interlaced
    and use the None, Sub and Up filters (as this module writes them) directly;
    anything else through pypng.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExportError(f"{path}: the file is missing") from None
    if data[:8] != _PNG_SIGNATURE:
        raise ExportError(f"{path}: not a PNG file")
    pos, ihdr, idat = 8, None, []
    try:
        while True:
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind = data[pos + 4 : pos + 8]
            body = data[pos + 8 : pos + 8 + length]
            (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
            if len(body) != length or zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
                raise ExportError(f"{path}: PNG chunk {kind!r} is damaged or truncated")
            pos += 12 + length
            if kind == b"IHDR":
                ihdr = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
    except struct.error:
        raise ExportError(f"{path}: PNG file is truncated") from None
    if ihdr is None:
        raise ExportError(f"{path}: PNG file has no IHDR chunk")
    w, h, depth, colour, _, _, interlace = ihdr
    channels = _PNG_CHANNELS.get(colour)
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise ExportError(f"{path}: PNG image data is damaged ({err})") from None
    if channels is None or depth not in (8, 16) or interlace:
        return _read_png_general(path)
    size = depth // 8
    bpp = channels * size
    stride = w * bpp
    if len(raw) != h * (stride + 1):
        raise ExportError(f"{path}: PNG image data holds {len(raw)} bytes, expected {h * (stride + 1)}")
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    filters = rows[:, 0]
    if np.any(filters > 2):
        return _read_png_general(path)
    out = rows[:, 1:].copy()
    if np.any(filters == 1):
        sub = np.flatnonzero(filters == 1)
        # Sub: a wrapping running sum along the row, per byte of the pixel.
        block = out[sub].reshape(len(sub), w, bpp)
        out[sub] = np.cumsum(block, axis=1, dtype=np.uint8).reshape(len(sub), stride)
    for r in np.flatnonzero(filters == 2):
        if r > 0:
            np.add(out[r], out[r - 1], out=out[r])
    image = out.view(np.dtype(">u2") if size == 2 else np.uint8).astype(np.uint16 if size == 2 else np.uint8)
    image = image.reshape(h, w, channels)
    return image[..., 0] if channels == 1 else image


def _read_png_general(path: Path) -> np.ndarray:
    try:
        import png
    except ImportError:
        raise ExportError(f"{path}: reading this kind of PNG needs the pypng package (pip install pypng)") from None
    try:
        w, h, rows, info = png.Reader(filename=str(path)).asDirect()
        planes = int(info["planes"])
        dtype = np.uint16 if info["bitdepth"] > 8 else np.uint8
        image = np.vstack([np.asarray(row, dtype=dtype) for row in rows]).reshape(h, w, planes)
    except png.Error as err:
        raise ExportError(f"{path}: PNG file is damaged ({err})") from None
    return image[..., 0] if planes == 1 else image


# ----------------------------------------------------------------------------- EXR


def _write_exr(path: Path, frame: np.ndarray, names: tuple[str, ...]) -> None:
    import OpenEXR

    planes = frame[..., None] if frame.ndim == 2 else frame
    channels = {c: np.ascontiguousarray(planes[..., i], dtype=np.float32) for i, c in enumerate(names)}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


def _read_exr(path: Path, names: list[str]) -> np.ndarray:
    import OpenEXR

    if not path.is_file():
        raise ExportError(f"{path}: the file is missing")
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            got = f.channels()
            planes = [np.asarray(got[c].pixels, dtype=np.float32) for c in names]
    except KeyError as err:
        raise ExportError(f"{path}: the EXR file has no channel {err}") from None
    except Exception as err:  # OpenEXR raises plain exceptions for damaged files
        raise ExportError(f"{path}: EXR file is damaged or truncated ({err})") from None
    return planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)


# -------------------------------------------------------------------- description


def _describe(name: str, arr: np.ndarray, fmt: str) -> dict:
    if arr.ndim not in (3, 4) or min(arr.shape[:3], default=0) < 1:
        raise ValueError(f"buffer {name!r}: shape {arr.shape} is not (T, H, W) or (T, H, W, C) with T, H, W >= 1")
    channels = 1 if arr.ndim == 3 else int(arr.shape[3])
    if not 1 <= channels <= 4:
        raise ValueError(f"buffer {name!r}: {channels} channels; image files hold 1 to 4")
    entry: dict = {
        "dtype": arr.dtype.name,
        "shape": [int(n) for n in arr.shape],
        "frames": int(arr.shape[0]),
        "channels": channels,
    }
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        kind, ext = ("png8" if arr.dtype == np.uint8 else "png16"), "png"
        entry.update(file_dtype=arr.dtype.name, bound="exact")
    elif arr.dtype.kind == "f" and fmt == "exr":
        kind, ext = "exr", "exr"
        exact = arr.dtype.itemsize <= 4
        entry.update(file_dtype="float32", bound="exact" if exact else "rounded to float32 (relative error <= 2^-24)")
    elif arr.dtype.kind == "f":
        kind, ext = "png16_range", "png"
        if np.isinf(arr).any():
            raise ValueError(f"buffer {name!r} holds +-inf, which 16-bit PNG cannot keep; export it as exr")
        finite = arr[~np.isnan(arr)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        scale = (hi - lo) / _LEVELS
        if not math.isfinite(scale):
            raise ValueError(f"buffer {name!r}: range {lo!r} to {hi!r} is too wide for 16-bit PNG; export it as exr")
        entry.update(
            file_dtype="uint16",
            offset=lo,
            scale=scale,
            nan_code=NAN_CODE,
            formula="value = offset + (code - 1) * scale; code 0 = NaN",
            bound=f"absolute error <= scale / 2 = {scale / 2:.6g}",
        )
    else:
        raise ValueError(f"buffer {name!r}: dtype {arr.dtype} has no image file format here (uint8, uint16 or float)")
    entry["file"] = kind
    entry["pattern"] = f"{name}/{{frame:05d}}.{ext}"
    if kind == "exr":
        entry["file_channels"] = list(_EXR_CHANNELS[channels])
    else:
        entry["file_channels"] = ["R", "G", "B"] if channels == 2 else _PNG_NAMES[channels]
        if channels == 2:
            entry["padding"] = "the two channels are red and green; blue is 0"
    return entry


def error_bound(entry: Mapping) -> float:
    """The largest absolute error of a buffer read back from its files, before float32 rounding."""
    return float(entry["scale"]) / 2 if entry["file"] == "png16_range" else 0.0


def _quantise(frame: np.ndarray, entry: Mapping) -> np.ndarray:
    values = frame.astype(np.float64)
    nan = np.isnan(values)
    scale = float(entry["scale"])
    values -= float(entry["offset"])
    if scale > 0:
        values /= scale
    else:
        values[:] = 0.0
    values[nan] = -1.0  # code 0 after the +1 below
    np.rint(values, out=values)
    values += 1.0
    np.clip(values, 0, 65535, out=values)
    codes = values.astype(np.uint16)
    codes[nan] = NAN_CODE
    return codes


def _frame_image(frame: np.ndarray, entry: Mapping) -> np.ndarray:
    if entry["file"] == "png16_range":
        frame = _quantise(frame, entry)
    if frame.ndim == 3 and frame.shape[2] == 2:
        frame = np.concatenate([frame, np.zeros((*frame.shape[:2], 1), frame.dtype)], axis=2)
    return frame


def _write_atomic(path: Path, data: Optional[bytes] = None, exr: Optional[tuple] = None) -> None:
    with file_beside(path, path.suffix) as (fd, tmp):
        if data is not None:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        else:
            os.close(fd)
            _write_exr(tmp, *exr)


def export_frames(
    folder: str | os.PathLike, arrays: Mapping[str, np.ndarray], fmt: str, level: int = PNG_LEVEL
) -> dict:
    """Write every frame of every array as an image file under `folder`; returns the description.

    Every buffer is checked before the first file is written (shape, dtype, inf in
    PNG); if a write still fails, the files written so far are removed.
    """
    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    folder = Path(folder)
    arrays = {name: np.asarray(arr) for name, arr in arrays.items()}
    description = {}
    for name, arr in arrays.items():
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"buffer name {name!r} cannot be a folder name")
        description[name] = _describe(name, arr, fmt)
    written: list[Path] = []
    made: list[Path] = []
    try:
        for name, arr in arrays.items():
            entry = description[name]
            sub = folder / name
            for parent in reversed([sub, *sub.parents]):
                if not parent.exists():
                    parent.mkdir()
                    made.append(parent)
            for t in range(arr.shape[0]):
                path = folder / entry["pattern"].format(frame=t)
                if entry["file"] == "exr":
                    _write_atomic(path, exr=(arr[t], _EXR_CHANNELS[entry["channels"]]))
                else:
                    _write_atomic(path, png_bytes(_frame_image(arr[t], entry), level))
                written.append(path)
    except BaseException:
        for path in written:
            try:
                path.unlink()
            except OSError:
                pass
        for parent in reversed(made):
            try:
                parent.rmdir()
            except OSError:
                pass
        raise
    return description


def read_frames(folder: str | os.PathLike, description: Mapping[str, Mapping]) -> dict[str, np.ndarray]:
    """The (T, H, W[, C]) arrays that ``export_frames`` wrote, within each file kind's bound.

    ExportError (a ValueError) naming the file when one is missing, damaged, or not
    the size the description says.
    """
    folder = Path(folder)
    out = {}
    for name, entry in description.items():
        try:
            kind = entry["file"]
            frames = int(entry["frames"])
            channels = int(entry["channels"])
            dtype = np.dtype(entry["dtype"])
            pattern = str(entry["pattern"])
            shape = tuple(int(n) for n in entry["shape"]) if "shape" in entry else None
        except (KeyError, TypeError, ValueError) as err:
            raise ExportError(f"{folder}: the description of {name!r} is incomplete ({err})") from None
        result = None
        for t in range(frames):
            path = folder / pattern.format(frame=t)
            if kind == "exr":
                image = _read_exr(path, list(_EXR_CHANNELS[channels]))
            else:
                image = read_png(path)
                if image.ndim == 3 and channels < image.shape[2]:
                    image = image[..., :channels]
                if channels == 1 and image.ndim == 3:
                    raise ExportError(f"{path}: the file has {image.shape[2]} channels, the description says 1")
                if kind == "png16_range":
                    if image.dtype != np.uint16:
                        raise ExportError(f"{path}: expected a 16-bit PNG")
                    values = float(entry["offset"]) + (image.astype(np.float64) - 1.0) * float(entry["scale"])
                    values[image == int(entry.get("nan_code", NAN_CODE))] = np.nan
                    image = values
                elif image.dtype != dtype:
                    raise ExportError(f"{path}: the file holds {image.dtype} pixels, the description says {dtype}")
            if result is None:
                full = (frames, *image.shape)
                if shape is not None and full != shape:
                    raise ExportError(f"{path}: the image is {image.shape}, the description says {shape[1:]}")
                result = np.empty(full, dtype)
            elif image.shape != result.shape[1:]:
                raise ExportError(f"{path}: the image is {image.shape}, earlier frames are {result.shape[1:]}")
            result[t] = image
        out[name] = result if result is not None else np.zeros(shape or (0,), dtype)
    return out
