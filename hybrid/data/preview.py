"""`hybrid dataset preview`: a grid video (or picture) of clips, one row per clip, buffers side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from hybrid.data.card import sample_clips
from hybrid.io.visualize import visualize

DEFAULT_BUFFERS = ("rgb", "depth", "instance", "normal", "albedo", "flow_fwd")


def preview_frames(
    dataset_dir: str | os.PathLike, clips: int = 4, buffers: Sequence[str] = DEFAULT_BUFFERS, tile: int = 160
) -> tuple[np.ndarray, float]:
    """((T, H, W, 3) uint8 grid over time, fps): `clips` clips spread over the dataset down, `buffers` across."""
    from PIL import Image

    rows, fps = [], 12.0
    for _, record in sample_clips(dataset_dir, clips, buffers=tuple(buffers)):
        fps = float((record["metadata"] or {}).get("fps", fps))
        arrays = record["buffers"]
        t = len(arrays[buffers[0]])
        row = []
        for name in buffers:
            frames = []
            for f in range(t):
                img = Image.fromarray(visualize(name, arrays[name][f]))
                h, w = arrays[name].shape[1:3]
                s = tile / max(h, w)
                img = img.resize((max(2, int(w * s)) // 2 * 2, max(2, int(h * s)) // 2 * 2), Image.NEAREST if name == "instance" else Image.BILINEAR)
                frames.append(np.asarray(img))
            row.append(np.stack(frames))
        rows.append(np.concatenate(row, axis=2))
    if not rows:
        raise ValueError(f"{dataset_dir} has no committed clips to preview")
    t = min(len(r) for r in rows)
    return np.concatenate([r[:t] for r in rows], axis=1), fps


def write_preview(dataset_dir: str | os.PathLike, out: str | os.PathLike, clips: int = 4, buffers: Sequence[str] = DEFAULT_BUFFERS) -> Path:
    """Write the grid as an MP4 (any other extension: a PNG of the middle frame). Returns the path."""
    from hybrid.data.shards import atomic_write
    from hybrid.io.video import mp4_bytes

    grid, fps = preview_frames(dataset_dir, clips, buffers)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".mp4":
        data = mp4_bytes(grid, fps)
        atomic_write(out, lambda fh: fh.write(data))
    else:
        from PIL import Image

        atomic_write(out, lambda fh: Image.fromarray(grid[len(grid) // 2]).save(fh, format="PNG"))
    return out
