"""Putting a fully written temporary folder in place of a destination folder, atomically.

Writers (clip folders, neural checkpoints, training states) fill a hidden sibling
folder given by ``staged_dir``; when they are done its files are fsynced and
``replace_dir`` puts it in place: readers see the old folder or the new one, never a
half-written one, and nothing is left behind if the writer fails before the swap.

The hidden siblings of a destination ``NAME`` are ``.NAME.partial-PID`` (being
written by process PID) and ``.NAME.old-PID`` (the previous ``NAME``, moved aside
for the swap). A process killed outright cannot remove them, so the next write
beside the same destination does (``clean_stale_staging``): a partial whose process
is gone is deleted, and an old folder is put back when ``NAME`` itself is missing,
since it is then the last complete version, or deleted when ``NAME`` exists.
Siblings of live processes are never touched. This assumes one machine writes into
a folder at a time: a process id means nothing on another host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Collection, Iterator, Optional

PARTIAL, OLD = "partial", "old"


@contextmanager
def file_beside(path: Path, suffix: str = ".tmp") -> Iterator[tuple[int, Path]]:
    """(open descriptor, path) of a new hidden file beside `path`; on leaving the block
    without an error it replaces `path`, on any error it is deleted (so `path` is
    complete or untouched). The block owns the descriptor: it must close it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        yield fd, Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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


def ownership_problem(
    folder: Path, marker: str, expected_format: str, allowed: Callable[[dict], Collection[str]]
) -> Optional[str]:
    """Why the existing, non-empty `folder` is not provably one this project wrote (None when it is).

    Ours means: the JSON file `marker` in it holds an object whose "format" has the
    family of `expected_format` ("hybrid-clip/1" accepts any "hybrid-clip/N": a newer
    version's folder is still ours), and every entry is a plain file named in
    allowed(that object). Only such a folder may be replaced or deleted as a whole.
    """
    file = folder / marker
    if file.is_symlink() or not file.is_file():
        return f"it has no {marker}"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"its {marker} is not readable JSON ({err})"
    family = re.escape(expected_format.rsplit("/", 1)[0]) + r"/\d+"
    fmt = data.get("format") if isinstance(data, dict) else None
    if not isinstance(fmt, str) or re.fullmatch(family, fmt) is None:
        return f'its {marker} has no "format": "{expected_format}"'
    names = set(allowed(data))
    foreign = _foreign_entries(folder, names)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        return f"besides {marker} it holds {shown}, which hybrid did not write"
    return None


def refuse_unless_replaceable(
    out: Path,
    folder_problem: Callable[[Path], Optional[str]],
    error: Callable[[str], BaseException],
    not_a_folder: str,
    foreign: Callable[[str], str],
) -> None:
    """Raise ``error(message)`` unless `out` is absent, an empty folder, or (folder_problem(out)
    is None) a folder this project wrote: ``not_a_folder`` when a file or the like is there,
    ``foreign(why)`` for a non-empty folder that is not ours."""
    if os.path.lexists(out) and not out.is_dir():
        raise error(not_a_folder)
    if not out.is_dir() or not any(out.iterdir()):
        return
    problem = folder_problem(out)
    if problem is not None:
        raise error(foreign(problem))


def _foreign_entries(folder: Path, names: set[str], prefix: str = "") -> list[str]:
    """Entries of `folder` (recursively) that are not listed in `names` (relative POSIX paths).

    A sub-folder is ours when some listed path lies inside it and everything in it is
    listed; a symbolic link or anything that is not a plain file is never ours.
    """
    foreign = []
    for p in sorted(folder.iterdir()):
        rel = prefix + p.name
        if p.is_dir() and not p.is_symlink():
            if any(n.startswith(rel + "/") for n in names):
                foreign.extend(_foreign_entries(p, names, rel + "/"))
            else:
                foreign.append(rel + "/")
        elif rel not in names or p.is_symlink() or not p.is_file():
            foreign.append(rel)
    return foreign


def staging_path(out: Path, kind: str, pid: Optional[int] = None) -> Path:
    """The hidden sibling of `out` of `kind` (PARTIAL or OLD) that process `pid` (default: this one) uses."""
    return out.parent / f".{out.name}.{kind}-{os.getpid() if pid is None else pid}"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine; anything that cannot be proved dead counts as alive."""
    if pid <= 0:
        return True  # 0 and negatives address process groups, not one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except (OverflowError, OSError):
        return True
    return True


def clean_stale_staging(parent: Path, names: str = r"[^/]+") -> list[Path]:
    """Tidy up the hidden siblings that killed writers left in `parent`; returns what was deleted.

    `names`: a regular expression that the destination names must match in full
    (``re.escape(out.name)`` for one destination). A ``.NAME.partial-PID`` of a dead
    process is deleted; a ``.NAME.old-PID`` of a dead process is renamed back to NAME
    when NAME is missing (the newest such folder, if several) and deleted otherwise.
    """
    pattern = re.compile(rf"^\.(?P<name>{names})\.(?P<kind>{PARTIAL}|{OLD})-(?P<pid>\d{{1,10}})$")
    try:
        entries = list(parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    stale = []
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        stale.append((match["kind"], match["name"], entry))
    removed = []
    # Old folders newest first, so the most recent complete version is the one put back.
    olds = sorted((s for s in stale if s[0] == OLD), key=lambda s: _mtime(s[2]), reverse=True)
    for _, name, entry in olds:
        dest = parent / name
        if not os.path.lexists(dest):
            os.rename(entry, dest)
        else:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    for kind, _, entry in stale:
        if kind == PARTIAL:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _fsync_tree(folder: Path) -> None:
    """fsync every file under `folder`, then each folder's entries, deepest first."""
    for path in sorted(folder.iterdir()):
        if path.is_dir() and not path.is_symlink():
            _fsync_tree(path)
        elif path.is_file():
            fsync_file(path)
    fsync_dir(folder)


@contextmanager
def staged_dir(out: Path, check: Optional[Callable[[Path], None]] = None) -> Iterator[Path]:
    """A fresh hidden sibling of `out` to write into; on leaving the block without an error
    its files are fsynced and it replaces `out`; on any error it is deleted.

    check(out) runs just before the swap and raises to refuse replacing what is at
    `out` now: the folder may have changed while the block was writing. What killed
    writers left beside `out` is cleaned up first (see clean_stale_staging).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(out.parent, re.escape(out.name))
    tmp = staging_path(out, PARTIAL)
    if tmp.exists():
        shutil.rmtree(tmp)  # this process's own, from a write that failed before it could clean up
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if check is not None:
            check(out)
        replace_dir(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out` (same parent), moving an existing `out` aside first and deleting it after.

    Whoever calls this has made sure that everything in `out` may be deleted.
    """
    old = staging_path(out, OLD)
    moved = False
    if os.path.lexists(out):
        os.rename(out, old)
        moved = True
    try:
        os.rename(tmp, out)
    except BaseException:
        if moved:
            os.rename(old, out)
        raise
    if moved:
        # The new folder is in place: a failure here only leaves a hidden folder that the next write removes.
        shutil.rmtree(old, ignore_errors=True)
