"""The dataset card: DIR/README.md with the recipe, counts, per-buffer statistics and a contact sheet.

Statistics are computed over a deterministic sample of at most `max_clips` clips
(evenly spaced over the dataset), streamed shard by shard, so writing the card of a
large dataset costs a bounded amount of reading. The card says which clips it used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from hybrid.data.manifest import Manifest, read_manifest, shard_path
from hybrid.data.shards import atomic_write, iter_shard

CARD_NAME = "README.md"
SHEET_NAME = "contact_sheet.png"


def sample_clips(dataset_dir: str | os.PathLike, max_clips: int, buffers: Optional[tuple[str, ...]] = None) -> Iterator[tuple[int, dict]]:
    """(index, record) for up to `max_clips` committed clips spread evenly over the dataset."""
    manifest = read_manifest(dataset_dir)
    committed = sorted(manifest.shards)
    indices = [i for k in committed for i in manifest.plan()[k]]
    if not indices:
        return
    picks = set(np.unique(np.linspace(0, len(indices) - 1, min(max_clips, len(indices))).round().astype(int)).tolist())
    wanted = {indices[p] for p in picks}
    for k in committed:
        if not wanted.intersection(manifest.plan()[k]):
            continue
        for index, record in iter_shard(shard_path(dataset_dir, k), buffers=buffers, video=False):
            if index in wanted:
                yield index, record


def buffer_statistics(arrays: dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    """min / max / mean / std per buffer; depth over hit pixels only (0 means no hit), flow as magnitude."""
    stats = {}
    for name, chunks in arrays.items():
        a = np.concatenate([c.reshape(-1, *c.shape[3:]) if c.ndim > 3 else c.reshape(-1) for c in chunks])
        if name.startswith("flow"):
            a = np.linalg.norm(a, axis=-1)
            a = a[np.isfinite(a)]
        elif name == "depth":
            a = a[a > 0]
        elif name == "normal":
            a = a.reshape(-1, 3)[np.any(a.reshape(-1, 3) != 0, axis=1)].reshape(-1)
        a = a.astype(np.float64).reshape(-1)
        if a.size == 0:
            stats[name] = {"min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0}
            continue
        stats[name] = {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "std": float(a.std())}
    return stats


def storage_line(manifest: Manifest) -> str:
    """How the buffers are stored and what the committed shards weigh, per clip and against the raw arrays."""
    layout = {
        "gzip": "gzip-compressed, one `<key>.<buffer>.npy.gz` member each",
        "none": "uncompressed, one `<key>.<buffer>.npy` member each",
    }.get(manifest.compression, manifest.compression)
    raw = sum(int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize for s in manifest.buffers.values())
    clips = sum(e.clip_count for e in manifest.shards.values())
    size = sum(e.bytes for e in manifest.shards.values())
    text = f"Buffers are stored {layout} (lossless; see hybrid/data/shards.py)."
    if clips:
        text += (
            f" The shards take {size / 1e6:.1f} MB, {size / clips / 1e6:.2f} MB per clip with its video and "
            f"metadata, against {raw / 1e6:.2f} MB of buffer arrays per clip."
        )
    return text


def write_card(dataset_dir: str | os.PathLike, recipe_text: str, max_clips: int = 8) -> Path:
    """Write DIR/README.md and DIR/contact_sheet.png (atomically); returns the card's path."""
    from PIL import Image

    from hybrid.io.preview import contact_sheet

    out = Path(dataset_dir)
    manifest = read_manifest(out)
    arrays: dict[str, list[np.ndarray]] = {}
    used, objects, first_frames = [], [], []
    sheet = None
    for index, record in sample_clips(out, max_clips):
        used.append(index)
        for name, arr in record["buffers"].items():
            # A few frames per clip are enough for statistics and keep memory bounded.
            arrays.setdefault(name, []).append(arr[:: max(1, len(arr) // 4)])
        meta = record["metadata"] or {}
        objects.append(len(meta.get("objects", [])))
        first_frames.append(record["buffers"]["rgb"][0])
        if sheet is None:
            sheet = contact_sheet(record["buffers"], rows=4)
    stats = buffer_statistics(arrays)
    if sheet is not None:
        grid = _grid(first_frames)
        sheet_img = _stack_vertical(grid, sheet)
        atomic_write(out / SHEET_NAME, lambda fh: Image.fromarray(sheet_img).save(fh, format="PNG"))

    committed = sum(e.clip_count for e in manifest.shards.values())
    lines = [
        f"# Dataset `{manifest.recipe.get('name', '?') if isinstance(manifest.recipe, dict) else '?'}`",
        "",
        f"{committed} of {manifest.clips} clips committed in {len(manifest.shards)} shards "
        f"({manifest.clips_per_shard} clips per shard), seed {manifest.seed}. Made by `hybrid dataset generate`; "
        "check it with `hybrid dataset verify` and load it with `hybrid.data.loader.ClipDataset`.",
        "",
        storage_line(manifest),
        "",
        f"![contact sheet]({SHEET_NAME})",
        "",
        "Top: the first frame of each sampled clip. Below: one clip's frames (down) and buffers (across).",
        "",
        "## Buffers",
        "",
        "| buffer | dtype | shape per clip | min | max | mean | std |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, spec in sorted(manifest.buffers.items()):
        s = stats.get(name, {})
        lines.append(
            f"| {name} | {spec.dtype} | {list(spec.shape)} | "
            + " | ".join(f"{s.get(k, 0.0):.4g}" for k in ("min", "max", "mean", "std"))
            + " |"
        )
    lines += [
        "",
        f"Statistics over clips {used} (every buffer value of every 4th frame; depth over pixels that hit "
        "a surface, normals over non-background pixels, flow as pixel magnitude).",
        "",
        f"Objects per clip in those clips: min {min(objects, default=0)}, max {max(objects, default=0)}, "
        f"mean {float(np.mean(objects)) if objects else 0:.2f}.",
        "",
        "## Recipe",
        "",
        "```yaml",
        recipe_text.rstrip(),
        "```",
        "",
        "## Manifest",
        "",
        "```json",
        json.dumps({k: v for k, v in manifest.to_json().items() if k != "shards"}, indent=1),
        "```",
        "",
    ]
    path = out / CARD_NAME
    atomic_write(path, lambda fh: fh.write("\n".join(lines).encode()))
    return path


def _grid(frames: list[np.ndarray], columns: int = 8, max_tile: int = 128) -> np.ndarray:
    from PIL import Image

    h, w = frames[0].shape[:2]
    s = min(1.0, max_tile / max(h, w))
    th, tw = max(1, int(h * s)), max(1, int(w * s))
    cols = min(columns, len(frames))
    rows = (len(frames) + cols - 1) // cols
    grid = np.full((rows * (th + 2) + 2, cols * (tw + 2) + 2, 3), 24, np.uint8)
    for k, f in enumerate(frames):
        tile = np.asarray(Image.fromarray(f).resize((tw, th), Image.BILINEAR))
        r, c = divmod(k, cols)
        grid[2 + r * (th + 2) : 2 + r * (th + 2) + th, 2 + c * (tw + 2) : 2 + c * (tw + 2) + tw] = tile
    return grid


def _stack_vertical(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = max(a.shape[1], b.shape[1])
    pad = lambda x: np.pad(x, ((0, 0), (0, w - x.shape[1]), (0, 0)), constant_values=24)  # noqa: E731
    return np.concatenate([pad(a), pad(b)], axis=0)
