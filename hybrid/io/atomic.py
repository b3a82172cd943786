"""Putting a fully written temporary folder in place of a destination folder, atomically.

Writers (clip folders, neural checkpoints) fill a hidden sibling folder, fsync its
files, then call ``replace_dir``: readers see the old folder or the new one, never a
half-written one, and nothing is left behind if the writer fails before the swap.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out` (same parent), moving an existing `out` aside first and deleting it after."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    if old.exists():
        shutil.rmtree(old)
