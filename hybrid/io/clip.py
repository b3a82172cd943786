"""The clip folder: `rgb.mp4`, `buffers.npz`, `metadata.json`, `preview.png`, written atomically.

A clip is plain data (`Clip`): stacked buffers with a leading T axis, and a JSON-able
metadata dict. The writer never knows which renderer produced the frames.

Atomicity: everything is written into a hidden sibling folder, flushed to disk, and
only then renamed into place, so an interrupted render leaves either the previous
clip or the new one, never a half-written folder.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from hybrid.io.atomic import staged_dir
from hybrid.io.preview import contact_sheet
from hybrid.io.video import write_mp4

CLIP_FILES = ("rgb.mp4", "buffers.npz", "metadata.json", "preview.png")


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


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file; give --out a folder path")
    if out.is_dir() and any(out.iterdir()) and not (out / "metadata.json").is_file():
        raise OutputError(
            f"{out} is a non-empty folder that does not hold a clip; refusing to replace it. "
            "Choose a new or empty folder for --out"
        )


def write_clip(
    clip: Clip, out_dir: str | os.PathLike, extra_videos: Optional[dict[str, np.ndarray]] = None
) -> dict[str, Path]:
    """Write the clip folder atomically; an existing clip at `out_dir` is replaced. Returns the file paths.

    extra_videos: more MP4s written into the same folder in the same atomic step,
    file name ("compare.mp4") -> uint8 (T, H, W, 3) frames at the clip's fps.
    """
    out = Path(out_dir).resolve()
    _check_target(out)
    extra = dict(extra_videos or {})
    with staged_dir(out) as tmp:
        write_mp4(str(tmp / "rgb.mp4"), clip.buffers["rgb"], clip.fps)
        save_npz(tmp / "buffers.npz", clip.buffers)
        with open(tmp / "metadata.json", "w") as fh:
            json.dump(clip.metadata, fh, indent=1)
        from PIL import Image

        Image.fromarray(contact_sheet(clip.buffers)).save(tmp / "preview.png")
        for name, frames in extra.items():
            if Path(name).name != name or not name.endswith(".mp4") or name in CLIP_FILES:
                raise ValueError(f"extra video name {name!r} must be a plain new file name ending in .mp4")
            write_mp4(str(tmp / name), frames, clip.fps)
    return {name: out / name for name in (*CLIP_FILES, *extra)}


def read_clip(clip_dir: str | os.PathLike) -> Clip:
    """Load a clip folder's buffers and metadata (not the MP4: `rgb` comes from buffers.npz, lossless)."""
    d = Path(clip_dir)
    with np.load(d / "buffers.npz", allow_pickle=False) as data:
        buffers = {k: data[k] for k in data.files}
    with open(d / "metadata.json") as fh:
        metadata = json.load(fh)
    return Clip(buffers=buffers, metadata=metadata)
