"""The clip folder: `rgb.mp4`, `buffers.npz`, `metadata.json`, `preview.png`, written atomically.

A clip is plain data (`Clip`): stacked buffers with a leading T axis, and a JSON-able
metadata dict. The writer never knows which renderer produced the frames.

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
from typing import Optional

import numpy as np

from hybrid.io.atomic import ownership_problem, staged_dir
from hybrid.io.preview import contact_sheet
from hybrid.io.video import write_mp4

CLIP_FILES = ("rgb.mp4", "buffers.npz", "metadata.json", "preview.png")
CLIP_FORMAT = "hybrid-clip/1"
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
    if os.path.lexists(out) and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder; give --out a folder path (a new one, or a clip folder to replace)")
    if out.is_symlink():
        raise OutputError(f"{out} is a symbolic link; give --out the folder it points to, or a new folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    problem = clip_folder_problem(out)
    if problem is not None:
        raise OutputError(
            f"{out} does not hold a clip written by hybrid ({problem}); writing a clip there would delete "
            f"what it holds, so nothing was written: {_CHOOSE}"
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
    clip: Clip, out_dir: str | os.PathLike, extra_videos: Optional[dict[str, np.ndarray]] = None
) -> dict[str, Path]:
    """Write the clip folder atomically; an existing clip at `out_dir` is replaced. Returns the file paths.

    Raises OutputError, before writing anything, when `out_dir` holds anything but a
    clip this project wrote, or cannot be written (see check_clip_target).

    extra_videos: more MP4s written into the same folder in the same atomic step,
    file name ("compare.mp4") -> uint8 (T, H, W, 3) frames at the clip's fps.
    """
    out = Path(out_dir).resolve()
    extra = dict(extra_videos or {})
    for name in extra:
        if Path(name).name != name or not name.endswith(".mp4") or name in CLIP_FILES or name.startswith("."):
            raise ValueError(f"extra video name {name!r} must be a plain new file name ending in .mp4")
    check_clip_target(out)
    files = [*CLIP_FILES, *extra]
    # `format` and `files` mark the folder as this project's, so a later write may replace it.
    metadata = {"format": CLIP_FORMAT, **{k: v for k, v in clip.metadata.items() if k not in ("format", "files")}}
    metadata["files"] = files
    with staged_dir(out, check=_check_replaceable) as tmp:
        write_mp4(str(tmp / "rgb.mp4"), clip.buffers["rgb"], clip.fps)
        save_npz(tmp / "buffers.npz", clip.buffers)
        with open(tmp / "metadata.json", "w") as fh:
            json.dump(metadata, fh, indent=1)
        from PIL import Image

        Image.fromarray(contact_sheet(clip.buffers)).save(tmp / "preview.png")
        for name, frames in extra.items():
            write_mp4(str(tmp / name), frames, clip.fps)
    return {name: out / name for name in files}


def read_clip(clip_dir: str | os.PathLike) -> Clip:
    """Load a clip folder's buffers and metadata (not the MP4: `rgb` comes from buffers.npz, lossless).

    Reads clips of any age: the `format` and `files` entries are not required.
    """
    d = Path(clip_dir)
    with np.load(d / "buffers.npz", allow_pickle=False) as data:
        buffers = {k: data[k] for k in data.files}
    with open(d / "metadata.json") as fh:
        metadata = json.load(fh)
    return Clip(buffers=buffers, metadata=metadata)
