"""The contact sheet: a few frames down, one column per buffer across, labelled."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hybrid.buffers import preview_columns
from hybrid.io.visualize import visualize

# The registry's preview columns; those absent from a clip (field buffers of a scene
# without fields) are skipped.
DEFAULT_COLUMNS = preview_columns()


def contact_sheet(
    buffers: dict[str, np.ndarray],
    rows: int = 4,
    columns: Sequence[str] = DEFAULT_COLUMNS,
    max_tile: int = 256,
) -> np.ndarray:
    """(H', W', 3) uint8 sheet of `rows` evenly spaced frames x the buffers in `columns` present."""
    from PIL import Image, ImageDraw

    cols = [c for c in columns if c in buffers]
    t = len(buffers[cols[0]])
    picks = np.unique(np.linspace(0, t - 1, min(rows, t)).round().astype(int))
    h, w = buffers[cols[0]].shape[1:3]
    s = min(1.0, max_tile / max(h, w))
    th, tw = max(1, int(h * s)), max(1, int(w * s))
    label_h, gap = 14, 2
    sheet = Image.new("RGB", (len(cols) * (tw + gap) + gap, label_h + len(picks) * (th + gap) + gap), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(cols):
        draw.text((gap + j * (tw + gap) + 3, 1), name, fill=(230, 230, 230))
        for i, f in enumerate(picks):
            tile = Image.fromarray(visualize(name, buffers[name][f]))
            if (th, tw) != (h, w):
                tile = tile.resize((tw, th), Image.NEAREST if name == "instance" else Image.BILINEAR)
            sheet.paste(tile, (gap + j * (tw + gap), label_h + gap + i * (th + gap)))
            if j == 0:
                draw.text((gap + 3, label_h + gap + i * (th + gap) + 2), f"t={f}", fill=(255, 255, 255))
    return np.asarray(sheet)
