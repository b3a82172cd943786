"""Per-frame image files of a clip's buffers, for any image tool: PNG and OpenEXR.

``export_frames(folder, arrays, fmt)`` writes ``folder/<buffer>/00000.<ext>`` for
every frame of every buffer and returns the description that ``read_frames`` (and
a user) needs to turn the files back into the arrays; a clip folder keeps it in
metadata.json's ``"storage"`` entry. Files per buffer dtype:

- uint8 buffers (rgb, albedo, liquid_mask): 8-bit PNG, exactly (1 channel grey,
  3 channels RGB);
- uint16 buffers (instance): 16-bit grey PNG, exactly;
- float buffers with ``fmt="exr"``: 32-bit float OpenEXR with ZIP compression,
  exactly (NaN and inf too); channels ``Y`` (one), ``R, G`` (two: flow dx, dy),
  ``R, G, B`` (three: normals x, y, z);
- float buffers with ``fmt="png"``: 16-bit PNG quantised over the buffer's range
  in the clip, as Kubric stores depth and flow: code 0 marks a non-finite value
  (NaN, the flow of a point that left the view; inf), codes 1 to 65535 stand for
  ``value = offset + (code - 1) * scale`` with ``offset`` the smallest finite value
  and ``scale = (largest - smallest) / 65534``, so the error is at most
  ``scale / 2``. Two channels are written as RGB with blue 0.

The description per buffer: ``{"file": "png8" | "png16" | "png16_range" | "exr",
"pattern": "<buffer>/{frame:05d}.<ext>", "frames", "dtype", "channels", and for
png16_range "offset", "scale", "nan_code": 0}``. Writers stage the folder (a clip
folder is written beside its destination and renamed into place), so an error
midway leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

FORMATS = ("png", "exr")
PATTERN = "{name}/{frame:05d}.{ext}"
_EXR_CHANNELS = {1: ("Y",), 2: ("R", "G"), 3: ("R", "G", "B")}


def export_frames(folder: str | os.PathLike, arrays: Mapping[str, np.ndarray], fmt: str) -> dict:
    """Write every frame of every (T, H, W[, C]) array as an image file under `folder`; returns the description."""
    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    folder = Path(folder)
    description = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        channels = 1 if arr.ndim == 3 else int(arr.shape[3])
        if arr.ndim not in (3, 4) or channels > 3:
            raise ValueError(f"buffer {name!r}: {arr.shape} is not (T, H, W) or (T, H, W, C<=3); it cannot be an image")
        entry: dict = {"dtype": arr.dtype.name, "channels": channels, "frames": int(arr.shape[0])}
        if arr.dtype == np.uint8:
            entry["file"], ext = "png8", "png"
        elif arr.dtype == np.uint16:
            entry["file"], ext = "png16", "png"
        elif arr.dtype.kind == "f" and fmt == "exr":
            entry["file"], ext = "exr", "exr"
        elif arr.dtype.kind == "f":
            entry["file"], ext = "png16_range", "png"
            finite = np.isfinite(arr)
            lo = float(arr[finite].min()) if finite.any() else 0.0
            hi = float(arr[finite].max()) if finite.any() else 0.0
            entry.update(offset=lo, scale=(hi - lo) / 65534.0, nan_code=0)
        else:
            raise ValueError(f"buffer {name!r}: dtype {arr.dtype} has no image file format here")
        entry["pattern"] = PATTERN.replace("{name}", name).replace("{ext}", ext)
        (folder / name).mkdir(parents=True, exist_ok=True)
        for t in range(arr.shape[0]):
            _write(folder / entry["pattern"].format(frame=t), arr[t], entry)
        description[name] = entry
    return description


def read_frames(folder: str | os.PathLike, description: Mapping[str, Mapping]) -> dict[str, np.ndarray]:
    """The (T, H, W[, C]) arrays that ``export_frames`` wrote, within each file kind's bound."""
    folder = Path(folder)
    out = {}
    for name, entry in description.items():
        frames = [_read(folder / entry["pattern"].format(frame=t), entry) for t in range(int(entry["frames"]))]
        out[name] = np.stack(frames).astype(entry["dtype"], copy=False)
    return out


def error_bound(entry: Mapping) -> float:
    """The largest absolute error of a buffer read back from its files (0 for the exact kinds)."""
    return float(entry["scale"]) / 2 if entry["file"] == "png16_range" else 0.0


def _write(path: Path, frame: np.ndarray, entry: Mapping) -> None:
    kind = entry["file"]
    if kind == "exr":
        import OpenEXR

        names = _EXR_CHANNELS[entry["channels"]]
        planes = frame[..., None] if frame.ndim == 2 else frame
        channels = {c: np.ascontiguousarray(planes[..., i], dtype=np.float32) for i, c in enumerate(names)}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, channels) as f:
            f.write(str(path))
        return
    if kind == "png16_range":
        finite = np.isfinite(frame)
        scale = float(entry["scale"]) or 1.0
        codes = np.where(finite, np.rint((np.where(finite, frame, 0) - entry["offset"]) / scale) + 1, 0)
        frame = np.clip(codes, 0, 65535).astype(np.uint16)
    _write_png(path, frame)


def _write_png(path: Path, frame: np.ndarray) -> None:
    import png

    h, w = frame.shape[:2]
    planes = frame.shape[2] if frame.ndim == 3 else 1
    if planes == 2:  # no two-channel colour PNG: the pair goes into red and green, blue 0
        frame = np.concatenate([frame, np.zeros((h, w, 1), frame.dtype)], axis=2)
        planes = 3
    writer = png.Writer(w, h, greyscale=planes == 1, bitdepth=8 * frame.dtype.itemsize, compression=6)
    with open(path, "wb") as fh:
        writer.write(fh, frame.reshape(h, w * planes))


def _read(path: Path, entry: Mapping) -> np.ndarray:
    kind, channels = entry["file"], int(entry["channels"])
    if kind == "exr":
        import OpenEXR

        with OpenEXR.File(str(path), separate_channels=True) as f:
            got = f.channels()
            planes = [np.asarray(got[c].pixels, dtype=np.float32) for c in _EXR_CHANNELS[channels]]
        return planes[0] if channels == 1 else np.stack(planes, axis=-1)
    import png

    w, h, rows, info = png.Reader(filename=str(path)).read()
    planes = info["planes"]
    data = np.vstack(list(rows)).reshape(h, w, planes)[..., : max(channels, 1)]
    data = data[..., 0] if channels == 1 else data
    if kind == "png16_range":
        values = entry["offset"] + (data.astype(np.float64) - 1) * entry["scale"]
        return np.where(data == entry["nan_code"], np.nan, values)
    return data.astype(entry["dtype"])
