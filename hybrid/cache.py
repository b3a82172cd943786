"""On-disk caches under ``${HYBRID_CACHE_DIR:-~/.cache/hybrid}``: every entry is checked when read.

A cache entry is a file whose name is the SHA-256 of everything that determines its
bytes: the inputs, a format version of ours and the version of each tool that made it
(pybullet for convex decompositions, NumPy for textures). A new tool version therefore
reads other names and never an old entry.

A name says what the file should hold, not that it does: a disk that filled up, a
copy cut short, a file an older release wrote under the same name or plain garbage
would otherwise be used silently (a decomposition with parts missing changes the
physics) or crash every run until someone deletes it. So ``cached_file`` checks an
entry before handing out its path, with a check each cache supplies (a digest of the
payload stored in the file itself plus a structural parse), and rebuilds what fails,
with a one-line note on the ``hybrid.cache`` logger. Rebuilt entries are written like
new ones: a temporary file in the same folder, then ``os.replace``, so a concurrent
reader sees the old file or the new one, never half of one. Entries are pure
functions of their name, so two processes rebuilding the same one write the same
bytes and either may win.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Optional, Union

log = logging.getLogger("hybrid.cache")


class DamagedEntry(ValueError):
    """A cache file that does not hold what its name promises; the message says what is wrong."""


def cache_root(override: Optional[Union[str, os.PathLike]] = None) -> Path:
    """``override`` if given, else ``$HYBRID_CACHE_DIR``, else ``~/.cache/hybrid``."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get("HYBRID_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hybrid"))


def tool_version(distribution: str) -> str:
    """The installed version of a package (``"unknown"`` when it carries no metadata), for cache keys."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def cached_file(path: Path, build: Callable[[], bytes], check: Callable[[bytes], None]) -> Path:
    """`path` once it holds bytes that pass `check`: as found, or rebuilt with `build()` and written atomically.

    `check(data)` raises DamagedEntry for bytes that must not be used. What `build`
    returns is checked too, so a build that makes something unusable fails here
    (RuntimeError) instead of being cached.
    """
    reason = None
    try:
        check(path.read_bytes())
        return path
    except FileNotFoundError:
        pass
    except (DamagedEntry, OSError) as err:
        reason = str(err) or type(err).__name__
    data = build()
    try:
        check(data)
    except DamagedEntry as err:
        raise RuntimeError(f"a fresh cache entry for {path.name} fails its own check: {err}") from None
    write_atomic(path, data)
    if reason is not None:
        log.warning("cache: rebuilt %s (%s)", path, reason)
    return path


def content_file(folder: Path, suffix: str, data: bytes) -> Path:
    """`data` kept as ``folder/<sha256 of data><suffix>``: the name is the content's hash, so a
    damaged or cut-off file is told by rehashing it (and rebuilt by ``cached_file``)."""
    digest = hashlib.sha256(data).hexdigest()

    def check(found: bytes) -> None:
        if hashlib.sha256(found).hexdigest() != digest:
            raise DamagedEntry("content does not match the SHA-256 in its name")

    return cached_file(folder / f"{digest}{suffix}", lambda: data, check)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)  # atomic within one file system
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------- text entries with a seal line
#
# Text formats that allow comments (OBJ) carry their own digest as a last line, so one
# file, renamed into place at once, is the whole entry: a separate digest file could
# be seen a moment out of step with the payload by a concurrent reader.

_SEAL = re.compile(rb"# hybrid-cache key=(?P<key>[0-9a-f]{64}) sha256=(?P<sha>[0-9a-f]{64}) (?P<info>[ -~]*)\n\Z")


def seal(body: bytes, key: str, info: str = "") -> bytes:
    """`body` (ending in a newline) followed by a comment line holding `key`, the body's SHA-256 and `info`."""
    if not body.endswith(b"\n"):
        body += b"\n"
    return body + f"# hybrid-cache key={key} sha256={hashlib.sha256(body).hexdigest()} {info}\n".encode("ascii")


def unseal(data: bytes, key: str) -> tuple[bytes, str]:
    """(body, info) of a sealed entry; DamagedEntry when the seal line is missing, names another key or
    does not match the body (truncated, empty, garbage, or written by another format version)."""
    if not data:
        raise DamagedEntry("empty file")
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    match = _SEAL.match(data, start)
    if match is None:
        raise DamagedEntry("no seal line at the end (truncated, or not written by this version)")
    if match["key"].decode() != key:
        raise DamagedEntry("sealed for another key")
    body = data[:start]
    if hashlib.sha256(body).hexdigest() != match["sha"].decode():
        raise DamagedEntry("content does not match its SHA-256")
    return body, match["info"].decode()
