"""Putting a fully written temporary folder in place of a destination folder, atomically.

Writers (clip folders, neural checkpoints) fill a hidden sibling folder given by
``staged_dir``; when they are done its files are fsynced and ``replace_dir`` puts it in
place: readers see the old folder or the new one, never a half-written one, and nothing
is left behind if the writer fails before the swap.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (files created or renamed in it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A fresh hidden sibling of `out` to write into; on leaving the block without an error
    its files are fsynced and it replaces `out`; on any error it is deleted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        for path in sorted(tmp.iterdir()):
            if path.is_file():
                fsync_file(path)
        fsync_dir(tmp)
        replace_dir(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out` (same parent), moving an existing `out` aside first and deleting it after."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    if old.exists():
        shutil.rmtree(old)
