"""Convex decomposition of concave meshes for dynamic bodies, with pybullet's built-in V-HACD.

Bullet collides moving bodies only as convex shapes (or compounds of them): a
dynamic cup given as its convex hull would be a solid lump that nothing can fall
into. ``decompose`` splits such a mesh into convex parts and returns an OBJ file
with one ``o`` group per part, which ``p.createCollisionShape(GEOM_MESH, fileName=...)``
loads as a compound of convex hulls.

Results are cached under ``${HYBRID_CACHE_DIR:-~/.cache/hybrid}/vhacd/`` by the
SHA-256 of the vertices, faces, parameters, our format version and pybullet's
version (``cache_key``), and written atomically (a temporary file, then
``os.replace``) so concurrent renders of the same scene never read half a file.
Each file ends in a seal line (``hybrid.cache.seal``) holding its key, the SHA-256
of the parts above it and their count; an entry whose seal or parts do not check
out (empty, truncated, garbage, an older layout) is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
from hybrid.physics.pybullet_quiet import pybullet as p
import trimesh

from hybrid.cache import DamagedEntry, cache_root, cached_file, seal, tool_version, unseal

# V-HACD 2.2 as built into pybullet voxelises on a grid of at least 64 cells along
# the longest side whatever `resolution` says, and each clipping level costs about a
# second for a ~1k-face mesh here, so `depth` bounds the time: 4 levels give up to
# 16 parts (a cup: a bottom and a ring of wall pieces) in a few seconds. A concavity
# of 1 % of the size is well below anything a rendered frame would show.
VHACD_PARAMS: dict[str, float | int] = {
    "resolution": 50_000,
    "depth": 4,
    "concavity": 0.01,
    "planeDownsampling": 4,
    "convexhullDownsampling": 4,
    "alpha": 0.05,
    "beta": 0.05,
    "gamma": 0.0005,
    "minVolumePerCH": 0.0001,
    "maxNumVerticesPerCH": 64,
    "pca": 0,
    "mode": 0,
    "convexhullApproximation": 1,
}

# A mesh filling at least this fraction of its convex hull is treated as convex by
# `auto`: tessellation noise of a round object stays far above it, a cup far below.
CONVEX_SOLIDITY = 0.97

_FORMAT_VERSION = "vhacd-obj-2"  # bump when the cached file layout changes (2: the seal line)


def cache_dir() -> Path:
    """Folder of cached decompositions: ``$HYBRID_CACHE_DIR/vhacd`` (default ``~/.cache/hybrid/vhacd``)."""
    return cache_root() / "vhacd"


def is_convex(mesh: trimesh.Trimesh) -> bool:
    """Whether the convex hull is a faithful collision shape for `mesh` (volume ratio >= CONVEX_SOLIDITY)."""
    if mesh.is_convex:
        return True
    if not mesh.is_watertight:
        return False  # an open surface has no reliable volume: let decomposition look at it
    hull = mesh.convex_hull.volume
    return hull > 0 and abs(mesh.volume) / hull >= CONVEX_SOLIDITY


def wants_decomposition(mesh: trimesh.Trimesh, mode: Literal["auto", "always", "never"]) -> bool:
    """Apply a mesh shape's ``convex_decomposition`` setting."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    return not is_convex(mesh)


def cache_key(mesh: trimesh.Trimesh, params: dict) -> str:
    """SHA-256 (hex) of our format version, pybullet's version (its V-HACD makes the parts), the
    vertices (float64), faces (int64) and decomposition parameters."""
    h = hashlib.sha256(_FORMAT_VERSION.encode())
    h.update(f"pybullet {tool_version('pybullet')}".encode())
    h.update(np.ascontiguousarray(mesh.vertices, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(mesh.faces, dtype="<i8").tobytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


def count_parts(obj_path: Path) -> int:
    """Number of convex parts (``o`` groups) in a decomposition OBJ file."""
    with open(obj_path, encoding="ascii", errors="replace") as f:
        return sum(1 for line in f if line.startswith("o "))


def decompose(mesh: trimesh.Trimesh, params: dict | None = None) -> Path:
    """Convex parts of `mesh` (shape-frame coordinates) as a cached OBJ file; returns its path.

    A cached file is used only when it passes ``check_entry``; otherwise it is made
    again (the same bytes a first build gives) and replaces the damaged one.
    """
    params = dict(VHACD_PARAMS if params is None else params)
    folder = cache_dir()
    key = cache_key(mesh, params)

    def build() -> bytes:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".work-") as work:
            source = Path(work) / "in.obj"
            result = Path(work) / "out.obj"
            _write_obj(source, mesh)
            with _quiet_native_stdout():
                p.vhacd(str(source), str(result), str(Path(work) / "log.txt"), **params)
            body = result.read_bytes() if result.is_file() else b""
        parts = len(_parse_parts(body)) if body else 0
        if parts == 0:
            raise RuntimeError(f"V-HACD produced no convex parts from {len(mesh.faces)} faces")
        return seal(body, key, f"parts={parts}")

    return cached_file(folder / f"{key}.obj", build, lambda data: check_entry(data, key))


def check_entry(data: bytes, key: str) -> None:
    """Raise DamagedEntry unless `data` is a whole decomposition sealed under `key`: the seal's
    SHA-256 matches, and the OBJ parses into the sealed number of parts, each a solid's worth of
    vertices and faces that index existing vertices."""
    body, info = unseal(data, key)
    match = re.fullmatch(r"parts=(\d+)", info)
    parts = _parse_parts(body)
    if match is None or int(match[1]) != len(parts) or not parts:
        raise DamagedEntry(f"{len(parts)} parts where the seal says {info!r}")


def _parse_parts(body: bytes) -> list[tuple[int, int]]:
    """(vertices, faces) per ``o`` group of an OBJ body; DamagedEntry for lines that do not parse."""
    parts: list[list[int]] = []
    vertices = 0
    try:
        for line in body.decode("ascii").splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if fields[0] == "o":
                parts.append([0, 0])
            elif fields[0] == "v" and parts and len(fields) == 4:
                if not all(math.isfinite(float(x)) for x in fields[1:]):
                    raise ValueError("a vertex is not finite")
                vertices += 1
                parts[-1][0] += 1
            elif fields[0] == "f" and parts and len(fields) >= 4:
                if not all(1 <= int(i.split("/")[0]) <= vertices for i in fields[1:]):
                    raise ValueError("a face names a vertex that is not there")
                parts[-1][1] += 1
            else:
                raise ValueError(f"unexpected line {line[:40]!r}")
    except (UnicodeDecodeError, ValueError) as err:
        raise DamagedEntry(f"not a decomposition OBJ: {err}") from None
    # The smallest solid (a tetrahedron) has 4 vertices and 4 faces.
    if any(v < 4 or f < 4 for v, f in parts):
        raise DamagedEntry("a part has fewer than 4 vertices or faces")
    return [(v, f) for v, f in parts]


def _write_obj(path: Path, mesh: trimesh.Trimesh) -> None:
    """Plain OBJ (positions and faces only) with full float precision, so the cache key describes the file."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    f = np.asarray(mesh.faces, dtype=np.int64) + 1
    with open(path, "w", encoding="ascii") as out:
        out.write("".join(f"v {x!r} {y!r} {z!r}\n" for x, y, z in v.tolist()))
        out.write("".join(f"f {a} {b} {c}\n" for a, b, c in f.tolist()))


@contextlib.contextmanager
def _quiet_native_stdout() -> Iterator[None]:
    """Silence V-HACD's progress lines, which its C++ code prints straight to file descriptor 1."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        fd = 1
    sys.stdout.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        _flush_c_stdio()  # push what the C library buffered into /dev/null before restoring
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def part_points(obj_path: Path) -> list[np.ndarray]:
    """The vertices (N_i, 3) of each convex part (``o`` group) of a decomposition OBJ file, in file order."""
    parts: list[list[list[float]]] = []
    with open(obj_path, encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("o "):
                parts.append([])
            elif line.startswith("v ") and parts:
                parts[-1].append([float(x) for x in line.split()[1:4]])
    return [np.asarray(points, dtype=np.float64) for points in parts]
