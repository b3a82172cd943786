"""The clip folder: `rgb.mp4`, the buffers, `metadata.json`, `preview.png`, written atomically.

A clip is plain data (`Clip`): stacked buffers with a leading T axis, and a JSON-able
metadata dict. The writer never knows which renderer produced the frames.

Storage (``STORAGES``; metadata.json's ``"storage"`` says which a clip used):

- ``compact`` (the default): one file, ``buffers.hyb``, every buffer kept by its
  registry codec (``hybrid.buffers``, ``hybrid.io.codecs``): integers and colours
  exactly, flow to 1/64 px, depth and the other floats to a relative 6.1e-5;
- ``npz``: ``buffers.npz``, every array exactly as rendered, for ``numpy.load``
  (the format of clips written before the choice existed, byte for byte);
- ``png`` / ``exr``: per-frame image files under ``frames/<buffer>/`` that any
  image tool opens (``hybrid.io.export``): 8- and 16-bit PNG, and for float
  buffers 16-bit PNG with a stored range or 32-bit float EXR.

``read_clip`` reads every one of them into the same arrays, within the bounds above.

Atomicity: everything is written into a hidden sibling folder, flushed to disk, and
only then renamed into place, so an interrupted render leaves either the previous
clip or the new one, never a half-written folder.

Replacing: writing a clip deletes what was at `out`, so the writer replaces only a
folder it can prove is a clip it wrote: metadata.json says ``"format":
"hybrid-clip/N"`` and every entry is a file named in its ``"files"`` list (or, for a
clip written before that list existed, one of CLIP_FILES and LEGACY_EXTRA_FILES).
Anything else at `out` is refused with OutputError and left as it is.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hybrid.io.atomic import ownership_problem, refuse_unless_replaceable, staged_dir
from hybrid.io.preview import contact_sheet
from hybrid.io.video import write_mp4

CLIP_FILES = ("rgb.mp4", "buffers.npz", "metadata.json", "preview.png")
CLIP_FORMAT = "hybrid-clip/1"
STORAGES = ("compact", "npz", "png", "exr")
DEFAULT_STORAGE = "compact"
COMPACT_FILE = "buffers.hyb"
FRAMES_DIR = "frames"
# Extra videos the writer added before metadata.json listed its files.
LEGACY_EXTRA_FILES = ("compare.mp4",)
_CHOOSE = "choose another --out folder, or move those files away or delete the folder yourself"


@dataclass
class Clip:
    """A rendered clip in memory: buffers[name] has shape (T, ...) as in the buffer table."""

    buffers: dict[str, np.ndarray]
    metadata: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return float(self.metadata["fps"])


class OutputError(Exception):
    """The output location cannot be used; the message says why and what to do."""


def save_npz(path: Path, arrays: dict[str, np.ndarray], compresslevel: int = 1) -> None:
    """An .npz that np.load reads, deflated at a low level: most of the gain for a fraction of the time."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)


def _clip_files(metadata: dict) -> list[str]:
    listed = metadata.get("files")
    if isinstance(listed, list) and all(isinstance(n, str) for n in listed):
        return [*CLIP_FILES, *listed]
    return [*CLIP_FILES, *LEGACY_EXTRA_FILES]


def clip_folder_problem(folder: Path) -> Optional[str]:
    """Why the existing, non-empty `folder` is not provably a clip folder this project wrote (None when it is)."""
    return ownership_problem(folder, "metadata.json", CLIP_FORMAT, _clip_files)


def _check_replaceable(out: Path) -> None:
    """OutputError unless `out` is absent, an empty folder, or a clip folder this project wrote."""
    if out.is_symlink():
        raise OutputError(f"{out} is a symbolic link; give --out the folder it points to, or a new folder")
    refuse_unless_replaceable(
        out, clip_folder_problem, OutputError,
        f"{out} is a file, not a folder; give --out a folder path (a new one, or a clip folder to replace)",
        lambda why: f"{out} does not hold a clip written by hybrid ({why}); writing a clip there would delete "
        f"what it holds, so nothing was written: {_CHOOSE}",
    )


def check_writable_parent(out: Path, what: str = "no clip") -> None:
    """OutputError unless the folder that will hold `out` exists or can be made, and takes a new file.

    Tries it for real (permissions, read-only mounts and quotas are not all visible in
    mode bits) and removes what it made, so a refused or failed run leaves nothing.
    """
    missing = []
    existing = out.parent
    while not os.path.lexists(existing) and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            f"{existing} is a file, so {out} cannot be made under it; "
            "choose an --out whose parent folders are folders (or are not there yet)"
        )
    created: list[Path] = []
    where = existing
    try:
        for folder in reversed(missing):
            where = folder.parent
            folder.mkdir()
            created.append(folder)
        where = out.parent
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.probe-", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(
            f"cannot write into {where} ({err.strerror or err}), so {what} can be written at {out}; "
            "choose an --out in a folder you can write to, or fix that folder's permissions"
        ) from None
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass


def check_clip_target(out: str | os.PathLike) -> None:
    """Raise OutputError unless write_clip(..., out) can write there; call it before rendering.

    `out` must be absent, an empty folder, or a clip folder this project wrote (see the
    module docstring): anything else is refused, never replaced. Its parent must exist or
    be creatable, and writable: a path under a file, a folder without write permission or
    a read-only file system is refused here, before hours of rendering, not after. Leaves
    nothing behind.
    """
    path = Path(out).resolve()
    _check_replaceable(path)
    check_writable_parent(path)


def write_clip(
    clip: Clip,
    out_dir: str | os.PathLike,
    extra_videos: Optional[dict[str, np.ndarray]] = None,
    *,
    storage: str = DEFAULT_STORAGE,
    buffers: Optional[Sequence[str]] = None,
) -> dict[str, Path]:
    """Write the clip folder atomically; an existing clip at `out_dir` is replaced. Returns the file paths.

    Raises OutputError, before writing anything, when `out_dir` holds anything but a
    clip this project wrote, or cannot be written (see check_clip_target).

    storage: how the buffers are kept, one of STORAGES (see the module docstring).
    buffers: which buffers to write (default: all of the clip's); ``rgb.mp4`` and
    the preview are made from the whole clip either way.
    extra_videos: more MP4s written into the same folder in the same atomic step,
    file name ("compare.mp4") -> uint8 (T, H, W, 3) frames at the clip's fps.
    """
    out = Path(out_dir).resolve()
    extra = dict(extra_videos or {})
    for name in extra:
        if Path(name).name != name or not name.endswith(".mp4") or name in CLIP_FILES or name.startswith("."):
            raise ValueError(f"extra video name {name!r} must be a plain new file name ending in .mp4")
    if storage not in STORAGES:
        raise ValueError(f"storage {storage!r} is not one of {', '.join(STORAGES)}")
    kept = _select(clip.buffers, buffers)
    check_clip_target(out)
    # `format` and `files` mark the folder as this project's, so a later write may replace it.
    metadata = {"format": CLIP_FORMAT, **{k: v for k, v in clip.metadata.items() if k not in ("format", "files", "storage")}}
    if buffers is not None and isinstance(metadata.get("buffers"), dict):
        metadata["buffers"] = {k: v for k, v in metadata["buffers"].items() if k in kept}
    with staged_dir(out, check=_check_replaceable) as tmp:
        write_mp4(str(tmp / "rgb.mp4"), clip.buffers["rgb"], clip.fps)
        stored, description = _write_buffers(tmp, kept, storage)
        if description is not None:
            metadata["storage"] = description
        files = ["rgb.mp4", *stored, "metadata.json", "preview.png", *extra]
        metadata["files"] = files
        with open(tmp / "metadata.json", "w") as fh:
            json.dump(metadata, fh, indent=1)
        from PIL import Image

        Image.fromarray(contact_sheet(clip.buffers)).save(tmp / "preview.png")
        for name, frames in extra.items():
            write_mp4(str(tmp / name), frames, clip.fps)
    return {name: out / name for name in files if "/" not in name} | ({FRAMES_DIR: out / FRAMES_DIR} if storage in ("png", "exr") else {})


def _select(arrays: dict[str, np.ndarray], names: Optional[Sequence[str]]) -> dict[str, np.ndarray]:
    if names is None:
        return dict(arrays)
    from hybrid.buffers import check_names

    return {n: arrays[n] for n in check_names(names, arrays, "--buffers")}


def _write_buffers(folder: Path, arrays: dict[str, np.ndarray], storage: str) -> tuple[list[str], Optional[dict]]:
    """Write `arrays` into `folder` as `storage`: (the files written, relative; metadata's "storage" entry or None)."""
    if storage == "npz":
        # No "storage" entry: clips in this format keep the bytes they always had.
        save_npz(folder / "buffers.npz", arrays)
        return ["buffers.npz"], None
    if storage == "compact":
        from hybrid import buffers as buffer_registry
        from hybrid.io.codecs import error_bound, write_compact

        codecs = {name: buffer_registry.codec(name) for name in arrays}
        write_compact(folder / COMPACT_FILE, arrays, codecs)
        return [COMPACT_FILE], {
            "format": "compact",
            "file": COMPACT_FILE,
            "buffers": {name: {**codec, "bound": error_bound(codec)} for name, codec in codecs.items()},
        }
    from hybrid.io.export import export_frames

    description = export_frames(folder / FRAMES_DIR, arrays, storage)
    files = sorted(p.relative_to(folder).as_posix() for p in (folder / FRAMES_DIR).rglob("*") if p.is_file())
    return files, {"format": storage, "folder": FRAMES_DIR, "buffers": description}


def clip_storage(metadata: dict) -> str:
    """How a clip's buffers are stored ("npz" for clips that do not say)."""
    entry = metadata.get("storage")
    return entry.get("format", "npz") if isinstance(entry, dict) else "npz"


def read_clip(clip_dir: str | os.PathLike, buffers: Optional[Sequence[str]] = None) -> Clip:
    """Load a clip folder's buffers and metadata (not the MP4: `rgb` comes from the stored buffers, lossless).

    Reads clips of any age and storage, giving back the arrays as rendered within
    each storage's bounds (module docstring). `buffers`: only these (default all).
    """
    d = Path(clip_dir)
    with open(d / "metadata.json") as fh:
        metadata = json.load(fh)
    storage = clip_storage(metadata)
    if storage == "npz":
        with np.load(d / "buffers.npz", allow_pickle=False) as data:
            wanted = data.files if buffers is None else check_stored(buffers, data.files, d)
            arrays = {k: data[k] for k in wanted}
    elif storage == "compact":
        from hybrid.io.codecs import read_compact

        entry = metadata["storage"]
        names = None if buffers is None else check_stored(buffers, entry.get("buffers", {}), d)
        arrays = read_compact(d / entry.get("file", COMPACT_FILE), names)
    elif storage in ("png", "exr"):
        from hybrid.io.export import read_frames

        entry = metadata["storage"]
        description = entry["buffers"]
        if buffers is not None:
            description = {k: description[k] for k in check_stored(buffers, description, d)}
        arrays = read_frames(d / entry.get("folder", FRAMES_DIR), description)
    else:
        raise ValueError(f"{d / 'metadata.json'}: storage {storage!r} is not one this version reads ({', '.join(STORAGES)})")
    return Clip(buffers=arrays, metadata=metadata)


def check_stored(names: Sequence[str], stored, folder: Path) -> list[str]:
    missing = [n for n in names if n not in stored]
    if missing:
        raise KeyError(f"{folder}: the clip holds no {', '.join(missing)} (it holds {', '.join(stored)})")
    return list(names)
